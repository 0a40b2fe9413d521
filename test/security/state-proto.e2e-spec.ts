import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { startTestApp, TestApp } from '../helpers/test-app';

const PROTO = '__proto__';

/**
 * Plugin names are keys of the JSON files in DATA_DIR. `__proto__` is a valid name
 * (`^[a-zA-Z0-9_-]+$`); written into a plain object it would set the object's prototype and
 * vanish from the file. Each case writes state, restarts the host on the same DATA_DIR and
 * reads it back.
 */
describe('persisted state for a plugin named __proto__', () => {
  let pluginsDir: string;
  let dataDir: string;
  let secretsKey: string;
  let t: TestApp | undefined;

  const start = async (): Promise<TestApp> => {
    t = await startTestApp({
      pluginsDir,
      env: { DATA_DIR: dataDir, SECRETS_KEY: secretsKey },
      keepDataDir: true,
    });
    return t;
  };
  const restart = async (): Promise<TestApp> => {
    await t?.close();
    t = undefined;
    return start();
  };

  beforeEach(() => {
    pluginsDir = mkdtempSync(join(tmpdir(), 'portico-proto-plugins-'));
    dataDir = mkdtempSync(join(tmpdir(), 'portico-proto-data-'));
    secretsKey = Buffer.alloc(32, 7).toString('base64');
    const dir = join(pluginsDir, PROTO);
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.js'), 'export {};\n');
    writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify({
        name: PROTO,
        displayName: 'Named __proto__',
        entry: 'index.js',
        secrets: [{ key: 'API_TOKEN' }],
      }),
    );
  });

  afterEach(async () => {
    await t?.close();
    t = undefined;
    rmSync(pluginsDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('access rule for __proto__, then host restart on the same DATA_DIR → rule kept', async () => {
    const app = await start();
    const put = await http(app.baseUrl, 'PUT', `/api/plugins/${PROTO}/access`, {
      token: app.adminToken(),
      body: { roles: ['ops'] },
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(200);
    const onDisk = JSON.parse(readFileSync(join(dataDir, 'plugins-state.json'), 'utf8')) as {
      plugins: Record<string, unknown>;
    };
    expect(Object.keys(onDisk.plugins)).toEqual([PROTO]);

    const again = await restart();
    const view = await http(again.baseUrl, 'GET', `/api/plugins/${PROTO}`, {
      token: again.adminToken(),
    });
    expect(view.json).toMatchObject({ name: PROTO, access: { roles: ['ops'] } });
    // And it is enforced, not just listed.
    const asset = await http(again.baseUrl, 'GET', `/api/plugins/${PROTO}/assets/index.js`, {
      token: again.token({ roles: ['user'] }),
    });
    expect(asset.status).toBe(403);
  });

  it('disable __proto__, then host restart → still disabled', async () => {
    const app = await start();
    const put = await http(app.baseUrl, 'PUT', `/api/plugins/${PROTO}/enable`, {
      token: app.adminToken(),
      body: { enabled: false },
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(200);
    const again = await restart();
    const view = await http(again.baseUrl, 'GET', `/api/plugins/${PROTO}`, {
      token: again.adminToken(),
    });
    expect(view.json).toMatchObject({ name: PROTO, enabled: false });
  });

  it('secret stored for __proto__, then host restart → still set', async () => {
    const app = await start();
    const put = await http(app.baseUrl, 'PUT', `/api/plugins/${PROTO}/secrets/API_TOKEN`, {
      token: app.adminToken(),
      body: { value: 'proto-secret-value' },
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(204);
    const again = await restart();
    const view = await http(again.baseUrl, 'GET', `/api/plugins/${PROTO}`, {
      token: again.adminToken(),
    });
    expect(view.json).toMatchObject({
      secrets: [{ key: 'API_TOKEN', set: true, source: 'store' }],
    });
  });
});
