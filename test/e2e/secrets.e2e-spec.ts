import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http, HttpResult } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { writeSecretVolume } from '../helpers/kubernetes-volume';

interface SecretView {
  key: string;
  required: boolean;
  set: boolean;
  source: 'file' | 'store' | null;
}
interface View {
  name: string;
  status: string;
  lastError?: string;
  secrets: SecretView[];
}

const TOKEN = 'tok_live_0123456789abcdef';
const NEW_TOKEN = 'tok_live_fedcba9876543210';
const OTHER = 'other_secret_value_42';

/** Helpers bound to one running app. */
function client(t: () => TestApp) {
  const admin = (method: string, path: string, body?: object): Promise<HttpResult> =>
    http(t().baseUrl, method, path, { token: t().adminToken(), body });
  const view = async (name: string): Promise<View> =>
    (await http(t().baseUrl, 'GET', `/api/plugins/${name}`, { token: t().token() })).json as View;
  const env = async (name: string): Promise<Record<string, string> | undefined> => {
    const res = await http(t().baseUrl, 'GET', `/api/plugins/${name}/rpc/env`, {
      token: t().token(),
    });
    return res.status === 200 ? (res.json as Record<string, string>) : undefined;
  };
  const waitStatus = (name: string, status: string): Promise<true> =>
    waitFor(async () => (await view(name)).status === status, 10_000, `${name} to be ${status}`);
  const putSecret = (name: string, key: string, value: unknown): Promise<HttpResult> =>
    admin('PUT', `/api/plugins/${name}/secrets/${key}`, { value });
  return { admin, view, env, waitStatus, putSecret };
}

describe('per-plugin secrets', () => {
  describe('through the API', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;
    const c = client(() => t);

    beforeAll(async () => {
      plugins = pluginsDirWith(['secret-env', 'secret-other']);
      t = await startTestApp({ pluginsDir: plugins.dir });
    });

    afterAll(async () => {
      await t.close();
      plugins.remove();
    });

    it('keeps a plugin with a missing required secret from starting, and says which', async () => {
      await c.waitStatus('secret-env', 'failed');
      const v = await c.view('secret-env');
      expect(v.lastError).toBe('missing required secrets: API_TOKEN');
      expect(v.secrets).toEqual([
        { key: 'API_TOKEN', required: true, set: false, source: null },
        { key: 'OPTIONAL_KEY', required: false, set: false, source: null },
      ]);
      await c.waitStatus('secret-other', 'running');
    });

    it('lets only admins write secrets', async () => {
      const path = '/api/plugins/secret-env/secrets/API_TOKEN';
      const body = { value: TOKEN };
      expect((await http(t.baseUrl, 'PUT', path, { body })).status).toBe(401);
      const asUser = await http(t.baseUrl, 'PUT', path, { token: t.token(), body });
      expect(asUser.status).toBe(403);
      expect((await http(t.baseUrl, 'DELETE', path, { token: t.token() })).status).toBe(403);
      expect((await c.view('secret-env')).secrets[0].set).toBe(false);
    });

    it.each([
      ['an undeclared key', 'secret-env', 'OTHER_TOKEN', TOKEN, 400],
      ['a reserved key', 'secret-env', 'PATH', TOKEN, 400],
      ['a malformed key', 'secret-env', 'api-token', TOKEN, 400],
      ['an unknown plugin', 'nope', 'API_TOKEN', TOKEN, 404],
      ['a value that is not a string', 'secret-env', 'API_TOKEN', 12345678, 400],
      ['a value over 64 KiB', 'secret-env', 'API_TOKEN', TOKEN.repeat(3000), 400],
      ['a value with NUL', 'secret-env', 'API_TOKEN', `${TOKEN}\u0000`, 400],
    ])('rejects %s without echoing the value', async (_what, name, key, value, status) => {
      const res = await c.putSecret(name, key, value);
      expect(res.status).toBe(status);
      expect(res.json).toMatchObject({ statusCode: status });
      expect(res.body.toString()).not.toContain(String(value).slice(0, 12));
    });

    it('rejects a body without value, or with other fields', async () => {
      const path = '/api/plugins/secret-env/secrets/API_TOKEN';
      expect((await c.admin('PUT', path, {})).status).toBe(400);
      const extra = await c.admin('PUT', path, { value: TOKEN, leak: TOKEN });
      expect(extra.status).toBe(400);
      expect(extra.body.toString()).not.toContain(TOKEN);
    });

    it('sets a secret write-only and starts the plugin with it in its environment', async () => {
      const res = await c.putSecret('secret-env', 'API_TOKEN', TOKEN);
      expect(res.status).toBe(204);
      expect(res.body.length).toBe(0);
      await c.waitStatus('secret-env', 'running');
      const env = await c.env('secret-env');
      expect(env?.API_TOKEN).toBe(TOKEN);
      expect(env).not.toHaveProperty('OPTIONAL_KEY');
      expect((await c.view('secret-env')).secrets).toEqual([
        { key: 'API_TOKEN', required: true, set: true, source: 'store' },
        { key: 'OPTIONAL_KEY', required: false, set: false, source: null },
      ]);
      for (const path of [
        '/api/plugins',
        '/api/plugins/secret-env',
        '/api/plugins/secret-env/manifest',
      ])
        expect((await c.admin('GET', path)).body.toString()).not.toContain(TOKEN);
    });

    it('gives each plugin only its own secrets', async () => {
      expect((await c.putSecret('secret-other', 'OTHER_TOKEN', OTHER)).status).toBe(204);
      await waitFor(async () => (await c.env('secret-other'))?.OTHER_TOKEN === OTHER);
      const other = await c.env('secret-other');
      const mine = await c.env('secret-env');
      expect(other).not.toHaveProperty('API_TOKEN');
      expect(mine).not.toHaveProperty('OTHER_TOKEN');
      expect(JSON.stringify(other)).not.toContain(TOKEN);
      expect(JSON.stringify(mine)).not.toContain(OTHER);
    });

    it('restarts the plugin when its secret changes', async () => {
      expect((await c.env('secret-env'))?.API_TOKEN).toBe(TOKEN);
      expect((await c.putSecret('secret-env', 'API_TOKEN', NEW_TOKEN)).status).toBe(204);
      await waitFor(async () => (await c.env('secret-env'))?.API_TOKEN === NEW_TOKEN);
    });

    it('sends x-plugin-secret-<key> on RPC requests; a client cannot spoof it', async () => {
      const res = await http(t.baseUrl, 'GET', '/api/plugins/secret-env/rpc/headers', {
        token: t.token(),
        headers: { 'x-plugin-secret-api_token': 'spoofed', 'x-plugin-secret-other_token': 'x' },
      });
      const seen = res.json as Record<string, string>;
      expect(seen['x-plugin-secret-api_token']).toBe(NEW_TOKEN);
      expect(seen).not.toHaveProperty('x-plugin-secret-other_token');
    });

    it('redacts the plugin printing its own secret in the log API', async () => {
      const res = await c.admin('GET', '/api/plugins/secret-env/logs?tail=200');
      const text = res.body.toString();
      expect(text).toContain('API_TOKEN is [REDACTED]');
      expect(text).toContain(`${'x'.repeat(100)}[REDACTED]`);
      expect(text).not.toContain(NEW_TOKEN.slice(0, 12));
      for (const form of [
        TOKEN,
        NEW_TOKEN,
        Buffer.from(NEW_TOKEN).toString('base64').replace(/=+$/, ''),
      ])
        expect(text).not.toContain(form);
    });

    it('keeps values encrypted on disk, in a file only the host user can read', () => {
      const file = join(t.config.DATA_DIR, 'secrets.enc.json');
      const text = readFileSync(file, 'utf8');
      for (const value of [NEW_TOKEN, OTHER]) {
        expect(text).not.toContain(value);
        expect(text).not.toContain(Buffer.from(value).toString('base64').slice(0, 16));
      }
      expect(statSync(file).mode & 0o777).toBe(0o600);
    });

    it('deletes a secret: the plugin can no longer start; deleting again is 404', async () => {
      const path = '/api/plugins/secret-env/secrets/API_TOKEN';
      const res = await c.admin('DELETE', path);
      expect(res.status).toBe(204);
      await c.waitStatus('secret-env', 'failed');
      expect((await c.view('secret-env')).lastError).toBe('missing required secrets: API_TOKEN');
      const again = await c.admin('DELETE', path);
      expect(again.status).toBe(404);
      expect(again.json).toMatchObject({ message: 'secret API_TOKEN is not set' });
    });
  });

  describe('mounted files (PLUGIN_SECRETS_DIR, e.g. a Kubernetes Secret)', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;
    let mounted: string;
    const c = client(() => t);

    beforeAll(async () => {
      plugins = pluginsDirWith(['secret-env']);
      mounted = mkdtempSync(join(tmpdir(), 'portico-mounted-'));
      writeSecretVolume(join(mounted, 'secret-env'), { API_TOKEN: `${TOKEN}\n` });
      t = await startTestApp({ pluginsDir: plugins.dir, env: { PLUGIN_SECRETS_DIR: mounted } });
    });

    afterAll(async () => {
      await t.close();
      plugins.remove();
      rmSync(mounted, { recursive: true, force: true });
    });

    it('starts the plugin with the mounted value, trailing newline removed', async () => {
      await c.waitStatus('secret-env', 'running');
      expect((await c.env('secret-env'))?.API_TOKEN).toBe(TOKEN);
      expect((await c.view('secret-env')).secrets[0]).toEqual({
        key: 'API_TOKEN',
        required: true,
        set: true,
        source: 'file',
      });
    });

    it('prefers the mounted file over a stored value', async () => {
      expect((await c.putSecret('secret-env', 'API_TOKEN', OTHER)).status).toBe(204);
      await c.waitStatus('secret-env', 'running');
      expect((await c.env('secret-env'))?.API_TOKEN).toBe(TOKEN);
      expect((await c.view('secret-env')).secrets[0].source).toBe('file');
    });

    it('restarts the plugin with the new value when the volume is updated', async () => {
      writeSecretVolume(join(mounted, 'secret-env'), { API_TOKEN: NEW_TOKEN });
      await waitFor(async () => (await c.env('secret-env'))?.API_TOKEN === NEW_TOKEN, 15_000);
      expect((await c.env('secret-env'))?.API_TOKEN).toBe(NEW_TOKEN);
    });
  });

  describe('a corrupt store', () => {
    let dataDir: string;
    let plugins: ReturnType<typeof pluginsDirWith>;
    let t: TestApp | undefined;
    const c = client(() => t as TestApp);
    const start = async (): Promise<TestApp> =>
      (t = await startTestApp({
        pluginsDir: plugins.dir,
        env: { DATA_DIR: dataDir },
        keepDataDir: true,
      }));
    const store = (): string => join(dataDir, 'secrets.enc.json');

    beforeAll(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'portico-corrupt-'));
      plugins = pluginsDirWith(['secret-env', 'secret-other']);
    });

    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    afterAll(() => {
      plugins.remove();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('does not stop the host; the plugin whose value was altered is not started', async () => {
      await start();
      expect((await c.putSecret('secret-env', 'API_TOKEN', TOKEN)).status).toBe(204);
      expect((await c.putSecret('secret-other', 'OTHER_TOKEN', OTHER)).status).toBe(204);
      await t?.close();

      const body = JSON.parse(readFileSync(store(), 'utf8')) as {
        secrets: Record<string, Record<string, { tag: string }>>;
      };
      body.secrets['secret-env'].API_TOKEN.tag = Buffer.alloc(16).toString('base64');
      writeFileSync(store(), JSON.stringify(body));

      await start();
      expect((await http((t as TestApp).baseUrl, 'GET', '/healthz')).status).toBe(200);
      await c.waitStatus('secret-env', 'failed');
      expect((await c.view('secret-env')).lastError).toMatch(/^secret store is corrupt: /);
      await c.waitStatus('secret-other', 'running');
      expect((await c.env('secret-other'))?.OTHER_TOKEN).toBe(OTHER);

      // Setting the value again replaces the altered one.
      expect((await c.putSecret('secret-env', 'API_TOKEN', NEW_TOKEN)).status).toBe(204);
      await waitFor(async () => (await c.env('secret-env'))?.API_TOKEN === NEW_TOKEN);
    });

    it('refuses writes with 409 when the whole store is unreadable, and keeps the file', async () => {
      writeFileSync(store(), '{"format":"portico-secrets","version":1,"keyId":"00');
      await start();
      await c.waitStatus('secret-env', 'failed');
      const res = await c.putSecret('secret-env', 'API_TOKEN', TOKEN);
      expect(res.status).toBe(409);
      expect(res.body.toString()).not.toContain(TOKEN);
      expect(readFileSync(store(), 'utf8')).toContain('"keyId":"00');
    });
  });
});
