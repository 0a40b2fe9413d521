import { mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { FIXTURE_PLUGINS, startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';

interface View {
  name: string;
  status: string;
  enabled: boolean;
  restarts: number;
  invalidReason?: string;
  displayName?: string;
  secrets: unknown[];
}

describe('management API /api/plugins', () => {
  let t: TestApp;
  /** The host afterAll must stop (none while one is being replaced). */
  let running: TestApp | undefined;
  let plugins: ReturnType<typeof pluginsDirWith>;
  /** Kept across a restart of the host, removed at the end. */
  let dataDir: string;
  const get = (path: string, token = t.token()) => http(t.baseUrl, 'GET', path, { token });
  const startHost = async (): Promise<void> => {
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { DATA_DIR: dataDir },
      keepDataDir: true,
    });
    running = t;
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  };

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo', 'invalid-manifest', 'bad-json', 'no-server']);
    dataDir = mkdtempSync(join(tmpdir(), 'portico-api-'));
    await startHost();
  });

  afterAll(async () => {
    await running?.close();
    plugins?.remove();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves liveness and readiness without credentials', async () => {
    expect((await http(t.baseUrl, 'GET', '/healthz')).status).toBe(200);
    expect((await http(t.baseUrl, 'GET', '/readyz')).status).toBe(200);
  });

  it('serves Prometheus metrics without credentials', async () => {
    await http(t.baseUrl, 'POST', '/api/plugins/echo/rpc/echo', { token: t.token(), body: 'm' });
    const res = await http(t.baseUrl, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain;.*version=0\.0\.4/);
    const text = res.body.toString();
    expect(text).toContain('portico_plugin_running{plugin="echo"} 1');
    expect(text).toMatch(/portico_rpc_requests_total\{plugin="echo",status="2xx"\} [1-9]/);
    expect(text).toContain('portico_process_resident_memory_bytes');
    // The limits CapacityMonitor watches (checked at startup, then every 5 s).
    const heap = /^portico_heap_usage_ratio (\S+)$/m.exec(text)?.[1];
    expect(Number(heap)).toBeGreaterThan(0);
    expect(Number(heap)).toBeLessThan(1);
    expect(text).toMatch(/^portico_upstream_port_usage_ratio \d/m);
    expect(text).toMatch(/^portico_fd_usage_ratio 0\.\d/m);
  });

  it('rejects requests without a valid token with 401 and the error shape', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins');
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
    const expired = await get('/api/plugins', t.token({ expiresInSeconds: -120 }));
    expect(expired.status).toBe(401);
  });

  it('lists every plugin, invalid ones with their reason', async () => {
    const res = await get('/api/plugins');
    expect(res.status).toBe(200);
    const list = res.json as View[];
    const byName = new Map(list.map((v) => [v.name, v]));
    expect(byName.get('echo')).toMatchObject({
      status: 'running',
      enabled: true,
      displayName: 'Echo',
      secrets: [],
      urls: {
        entry: '/api/plugins/echo/assets/frontend/index.js',
        ws: '/plugin-ws/echo',
        rpc: '/api/plugins/echo/rpc/',
      },
    });
    const entry = await get('/api/plugins/echo/assets/frontend/index.js');
    expect(entry.status).toBe(200);
    expect(entry.headers['content-type']).toMatch(/javascript/);
    expect(byName.get('invalid-manifest')).toMatchObject({ status: 'invalid' });
    expect(byName.get('invalid-manifest')?.invalidReason).toMatch(/entry/);
    expect(byName.get('bad-json')?.status).toBe('invalid');
    expect(byName.get('bad-json')?.invalidReason).toMatch(/JSON/i);
  });

  it('returns one plugin and its manifest', async () => {
    expect((await get('/api/plugins/echo')).json).toMatchObject({ name: 'echo' });
    const manifest = await get('/api/plugins/echo/manifest');
    expect(manifest.json).toMatchObject({ name: 'echo', server: 'server.js' });
  });

  it('answers 404 for an unknown plugin', async () => {
    const res = await get('/api/plugins/nope');
    expect(res.status).toBe(404);
    expect(res.json).toMatchObject({ statusCode: 404, error: 'Not Found' });
  });

  it('needs the admin role for mutations', async () => {
    const res = await http(t.baseUrl, 'PUT', '/api/plugins/echo/enable', {
      token: t.token(),
      body: { enabled: false },
    });
    expect(res.status).toBe(403);
    expect(
      (await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token: t.token() })).status,
    ).toBe(403);
    expect((await get('/api/plugins/echo/logs')).status).toBe(403);
  });

  it('answers 400 with validation messages for a bad body', async () => {
    const res = await http(t.baseUrl, 'PUT', '/api/plugins/echo/enable', {
      token: t.adminToken(),
      body: { enabled: 'yes' },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.json)).toMatch(/enabled must be a boolean/);
    const bad = await get('/api/plugins/echo/logs?tail=0', t.adminToken());
    expect(bad.status).toBe(400);
  });

  it('answers 409 for restarting a plugin without a server', async () => {
    const res = await http(t.baseUrl, 'POST', '/api/plugins/no-server/restart', {
      token: t.adminToken(),
    });
    expect(res.status).toBe(409);
  });

  it('disables and enables a plugin, and the flag survives a restart of the host', async () => {
    const off = await http(t.baseUrl, 'PUT', '/api/plugins/echo/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    expect(off.status).toBe(200);
    expect(off.json).toMatchObject({ enabled: false, status: 'disabled' });

    // Stopped, then started again on the same DATA_DIR (one host at a time may hold it).
    running = undefined;
    await t.close();
    await startHost();
    expect((await get('/api/plugins/echo')).json).toMatchObject({
      enabled: false,
      status: 'disabled',
    });

    const on = await http(t.baseUrl, 'PUT', '/api/plugins/echo/enable', {
      token: t.adminToken(),
      body: { enabled: true },
    });
    expect(on.json).toMatchObject({ enabled: true });
    await waitFor(async () => ((await get('/api/plugins/echo')).json as View).status === 'running');
  });

  it('rescan picks up added and removed plugin folders', async () => {
    const link = join(plugins.dir, 'crash-later');
    symlinkSync(join(FIXTURE_PLUGINS, 'crash-later'), link);
    const added = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token: t.adminToken() });
    expect(added.status).toBe(200);
    expect(added.json).toMatchObject({ added: ['crash-later'], removed: [] });
    await waitFor(
      async () => ((await get('/api/plugins/crash-later')).json as View).status === 'running',
    );
    unlinkSync(link);
    const removed = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token: t.adminToken() });
    expect(removed.json).toMatchObject({ added: [], removed: ['crash-later'] });
    expect((await get('/api/plugins/crash-later')).status).toBe(404);
  });

  it('returns the last log lines to an admin', async () => {
    const res = await get('/api/plugins/echo/logs?tail=2', t.adminToken());
    expect(res.status).toBe(200);
    const lines = (res.json as { lines: { line: string; stream: string }[] }).lines;
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(2);
  });
});
