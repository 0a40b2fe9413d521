import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect } from '../helpers/ws-client';

interface View {
  name: string;
  access: { roles: string[]; allowed: boolean };
}

describe('per-plugin access by role', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const ops = (): string => t.token({ sub: 'olga', roles: ['ops'] });
  const plain = (): string => t.token({ sub: 'paul', roles: ['user'] });

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
    const res = await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
      token: t.adminToken(),
      body: { roles: ['ops', 'sre'] },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ access: { roles: ['ops', 'sre'], allowed: true } });
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  it('lets only admins change access, and validates the body', async () => {
    const denied = await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
      token: ops(),
      body: { roles: [] },
    });
    expect(denied.status).toBe(403);
    const bad = await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
      token: t.adminToken(),
      body: { roles: ['has space'] },
    });
    expect(bad.status).toBe(400);
    const missing = await http(t.baseUrl, 'PUT', '/api/plugins/nope/access', {
      token: t.adminToken(),
      body: { roles: [] },
    });
    expect(missing.status).toBe(404);
  });

  it('lists the plugin to everyone, marking whether the caller may use it', async () => {
    const forPlain = (await http(t.baseUrl, 'GET', '/api/plugins', { token: plain() }))
      .json as View[];
    const forOps = (await http(t.baseUrl, 'GET', '/api/plugins', { token: ops() })).json as View[];
    expect(forPlain.find((v) => v.name === 'echo')?.access).toEqual({
      roles: ['ops', 'sre'],
      allowed: false,
    });
    expect(forOps.find((v) => v.name === 'echo')?.access.allowed).toBe(true);
  });

  it('answers 403 on assets and RPC for a user without the role', async () => {
    const asset = await http(t.baseUrl, 'GET', '/api/plugins/echo/assets/frontend/index.js', {
      token: plain(),
    });
    expect(asset.status).toBe(403);
    const rpc = await http(t.baseUrl, 'POST', '/api/plugins/echo/rpc/echo', {
      token: plain(),
      body: 'x',
    });
    expect(rpc.status).toBe(403);
    expect(rpc.json).toMatchObject({ statusCode: 403, error: 'Forbidden' });
  });

  it('refuses the WebSocket handshake with HTTP 403 for a user without the role', async () => {
    const r = await connect(`${t.wsUrl}/plugin-ws/echo`, { token: plain() });
    expect(r).toMatchObject({ kind: 'rejected', status: 403 });
  });

  it('serves users with one of the roles, and admins', async () => {
    for (const token of [ops(), t.adminToken()]) {
      const asset = await http(t.baseUrl, 'GET', '/api/plugins/echo/assets/frontend/index.js', {
        token,
      });
      expect(asset.status).toBe(200);
      const rpc = await http(t.baseUrl, 'POST', '/api/plugins/echo/rpc/echo', { token, body: 'x' });
      expect(rpc.body.toString()).toBe('x');
      const ws = await connect(`${t.wsUrl}/plugin-ws/echo`, { token });
      expect(ws.kind).toBe('open');
      if (ws.kind === 'open') ws.conn.ws.close();
    }
  });

  it('an empty role list opens the plugin to every user again', async () => {
    await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
      token: t.adminToken(),
      body: { roles: [] },
    });
    const rpc = await http(t.baseUrl, 'POST', '/api/plugins/echo/rpc/echo', {
      token: plain(),
      body: 'y',
    });
    expect(rpc.status).toBe(200);
  });
});
