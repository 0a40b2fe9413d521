import { signCompact } from '../../scripts/lib/token-minter';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TEST_JWT_SECRET, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect } from '../helpers/ws-client';

function bearerProtocol(token: string): string {
  return `base64url.bearer.authorization.portico.${Buffer.from(token).toString('base64url')}`;
}

describe('authentication and roles', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterAll(async () => {
    await t.close();
    plugins.remove();
  });

  it('leaves the health probes open', async () => {
    expect((await http(t.baseUrl, 'GET', '/healthz')).status).toBe(200);
  });

  it('answers 401 with the error shape when no credential is sent', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins');
    expect(res.status).toBe(401);
    expect(res.json).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: 'missing credentials',
    });
  });

  it.each([
    [
      'an Authorization header',
      (token: string) => ({ path: '/api/plugins', headers: { authorization: `bearer ${token}` } }),
    ],
    [
      'the portico_token cookie',
      (token: string) => ({
        path: '/api/plugins',
        headers: { cookie: `x=1; portico_token=${token}` },
      }),
    ],
    [
      'the token query parameter',
      (token: string) => ({ path: `/api/plugins?token=${token}`, headers: {} }),
    ],
  ])('accepts a token in %s', async (_where, place) => {
    const { path, headers } = place(t.token());
    const res = await http(t.baseUrl, 'GET', path, { headers });
    expect(res.status).toBe(200);
    expect(Array.isArray(res.json)).toBe(true);
  });

  it('answers 401 for an expired or forged token without echoing it', async () => {
    const expired = t.token({ expiresInSeconds: -120 });
    const res = await http(t.baseUrl, 'GET', '/api/plugins', { token: expired });
    expect(res.json).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'token expired' });
    expect(res.body.toString()).not.toContain(expired.split('.')[2]);
    const forged = t.token().replace(/\.[^.]+$/, '.AAAA');
    const bad = await http(t.baseUrl, 'GET', '/api/plugins', { token: forged });
    expect(bad.json).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'invalid token' });
  });

  it('answers 403 naming the role for a user on an admin route, and lets an admin in', async () => {
    const res = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token: t.token() });
    expect(res.json).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      message: 'requires role admin',
    });
    const admin = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token: t.adminToken() });
    expect(admin.status).toBe(200);
  });

  it('reads roles given as a space separated string', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const token = signCompact(
      { alg: 'HS256', typ: 'JWT' },
      { sub: 'carol', roles: 'user admin', exp },
      TEST_JWT_SECRET,
    );
    const res = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token });
    expect(res.status).toBe(200);
  });
});

describe('with JWT_ISSUER and JWT_AUDIENCE set', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'portico' },
    });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterAll(async () => {
    await t.close();
    plugins.remove();
  });

  const good = (): string => t.token({ issuer: 'https://id.example', audience: 'portico' });

  it('accepts a token from that issuer for that audience, over HTTP and WebSocket', async () => {
    expect((await http(t.baseUrl, 'GET', '/api/plugins', { token: good() })).status).toBe(200);
    const r = await connect(`${t.wsUrl}/plugin-ws/echo`, {
      protocols: [bearerProtocol(good()), 'portico'],
    });
    expect(r.kind).toBe('open');
    if (r.kind === 'open') r.conn.ws.terminate();
  });

  it.each([
    ['no issuer', {}],
    ['another issuer', { issuer: 'https://evil.example', audience: 'portico' }],
    ['another audience', { issuer: 'https://id.example', audience: 'other' }],
  ])('refuses a token with %s, over HTTP and WebSocket', async (_what, claims) => {
    const token = t.token(claims);
    const res = await http(t.baseUrl, 'GET', '/api/plugins', { token });
    expect(res.status).toBe(401);
    const r = await connect(`${t.wsUrl}/plugin-ws/echo`, { token });
    expect(r).toMatchObject({ kind: 'rejected', status: 401 });
  });
});

/**
 * Passport keeps one `jwt` strategy per process, so the app started last owns the registered
 * one; each app must still judge tokens by its own keys (as Jest runs several apps per worker).
 */
describe('two apps in one process with different JWT_SECRETs', () => {
  const apps: TestApp[] = [];
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith([]);
    for (const secret of [
      'first-app-secret-'.padEnd(40, 'a'),
      'second-app-secret-'.padEnd(40, 'b'),
    ]) {
      apps.push(await startTestApp({ pluginsDir: plugins.dir, env: { JWT_SECRET: secret } }));
    }
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    plugins.remove();
  });

  it("lets each app accept its own tokens and refuse the other app's with 401", async () => {
    const [first, second] = apps as [TestApp, TestApp];
    expect(first.config.JWT_SECRET).not.toBe(second.config.JWT_SECRET);
    for (const [app, other] of [
      [first, second],
      [second, first],
    ] as const) {
      const own = await http(app.baseUrl, 'GET', '/api/plugins', { token: app.token() });
      expect(own.status).toBe(200);
      const foreign = await http(app.baseUrl, 'GET', '/api/plugins', { token: other.token() });
      expect(foreign.json).toEqual({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'invalid token',
      });
    }
  });
});
