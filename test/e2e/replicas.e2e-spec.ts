import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { mintToken } from '../../scripts/lib/token-minter';
import { http } from '../helpers/http-client';
import { writeSecretVolume } from '../helpers/kubernetes-volume';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { allConverge, echoOn as echoOnHost } from '../helpers/replicas';
import { TEST_JWT_SECRET } from '../helpers/test-app';
import type { WsConnection } from '../helpers/ws-client';

/**
 * Two replicas as two pods have them: each its own DATA_DIR, both the same PLUGINS_CONFIG
 * (a ConfigMap volume) and PLUGIN_SECRETS_DIR (a Secret volume), both changed the way kubelet
 * changes them (a new timestamped folder, the `..data` symlink swapped).
 */
describe('several replicas on one PLUGINS_CONFIG and PLUGIN_SECRETS_DIR', () => {
  const user = mintToken(TEST_JWT_SECRET, { sub: 'user', roles: [] });
  const ops = mintToken(TEST_JWT_SECRET, { sub: 'ops-person', roles: ['ops'] });
  const admin = mintToken(TEST_JWT_SECRET, { sub: 'root', roles: ['admin'] });
  let root: string;
  let configDir: string;
  let secretsDir: string;
  let plugins: { dir: string; remove(): void };
  let replicas: PorticoProcess[] = [];
  const sockets: WsConnection[] = [];

  const writeConfig = (text: string): void =>
    writeSecretVolume(configDir, { 'plugins.yaml': text });
  const writeSecret = (value: string): void =>
    writeSecretVolume(join(secretsDir, 'secret-env'), { API_TOKEN: value });
  const view = async (
    host: PorticoProcess,
    name: string,
  ): Promise<{ status: string; enabled: boolean; access: { roles: string[] } }> =>
    (await http(host.baseUrl, 'GET', `/api/plugins/${name}`, { token: admin })).json as {
      status: string;
      enabled: boolean;
      access: { roles: string[] };
    };
  const readyz = async (
    host: PorticoProcess,
  ): Promise<{ status: number; config: { generation?: number; lastError?: string } }> => {
    const res = await http(host.baseUrl, 'GET', '/readyz');
    const body = res.json as { details: { config: { generation?: number; lastError?: string } } };
    return { status: res.status, config: body.details.config };
  };
  const metric = async (host: PorticoProcess, name: string): Promise<number> => {
    const text = (await http(host.baseUrl, 'GET', '/metrics')).body.toString();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1]);
  };
  const echoOn = (host: PorticoProcess, token: string): Promise<WsConnection> =>
    echoOnHost(host, token, sockets);
  const bothConverge = (what: string, check: (host: PorticoProcess) => Promise<boolean>) =>
    allConverge(replicas, what, check);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'portico-replicas-'));
    configDir = join(root, 'config');
    secretsDir = join(root, 'secrets');
    writeConfig('plugins:\n  echo:\n    enabled: true\n');
    writeSecret('first-token');
    plugins = pluginsDirWith(['bundled:echo', 'secret-env']);
    const env = {
      PLUGINS_CONFIG: join(configDir, 'plugins.yaml'),
      PLUGINS_CONFIG_POLL_MS: '200',
      PLUGIN_SECRETS_DIR: secretsDir,
      LOG_LEVEL: 'info',
    };
    replicas = await Promise.all([
      startPorticoProcess(plugins.dir, { env, capture: true }),
      startPorticoProcess(plugins.dir, { env, capture: true }),
    ]);
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await Promise.all(replicas.map((r) => r.stop()));
    plugins.remove();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('both report the same generation: the SHA-256 prefix of the file', async () => {
    // What the docs tell operators to compute: printf '%d' 0x$(sha256sum plugins.yaml | cut -c1-12)
    const sha = createHash('sha256').update('plugins:\n  echo:\n    enabled: true\n').digest('hex');
    const expected = Number.parseInt(sha.slice(0, 12), 16);
    for (const host of replicas) {
      expect((await readyz(host)).config).toMatchObject({ generation: expected });
      expect(await metric(host, 'portico_config_generation')).toBe(expected);
      expect(await metric(host, 'portico_config_valid')).toBe(1);
    }
  });

  it('state and secret changes through the API → 409 saying where to change them, on either replica', async () => {
    for (const host of replicas) {
      const enable = await http(host.baseUrl, 'PUT', '/api/plugins/echo/enable', {
        token: admin,
        body: { enabled: false },
      });
      expect(enable.status).toBe(409);
      expect(JSON.stringify(enable.json)).toContain(join(configDir, 'plugins.yaml'));
      const access = await http(host.baseUrl, 'PUT', '/api/plugins/echo/access', {
        token: admin,
        body: { roles: ['ops'] },
      });
      expect(access.status).toBe(409);
      expect((await view(host, 'echo')).enabled).toBe(true);
      // A secret stored through one replica would stay in its DATA_DIR: mounted files only.
      const secret = await http(host.baseUrl, 'PUT', '/api/plugins/secret-env/secrets/API_TOKEN', {
        token: admin,
        body: { value: 'only-here' },
      });
      expect(secret.status).toBe(409);
      expect(JSON.stringify(secret.json)).toContain('PLUGIN_SECRETS_DIR');
    }
  });

  it('roles applied on both: users who lost access are disconnected (4403), others stay', async () => {
    const plain = await Promise.all(replicas.map((h) => echoOn(h, user)));
    const allowed = await Promise.all(replicas.map((h) => echoOn(h, ops)));
    writeConfig('plugins:\n  echo:\n    roles: [ops]\n');
    const closes = await Promise.all(plain.map((c) => c.closed));
    expect(closes.map((c) => c.code)).toEqual([4403, 4403]);
    await bothConverge(
      'roles [ops]',
      async (h) => (await view(h, 'echo')).access.roles.join() === 'ops',
    );
    for (const conn of allowed) {
      conn.ws.send('still here');
      expect((await conn.next()).data.toString()).toContain('still here');
    }
    for (const host of replicas) {
      const refused = await http(host.baseUrl, 'GET', '/api/plugins/echo/rpc/anything', {
        token: user,
      });
      expect(refused.status).toBe(403);
    }
  });

  it('plugin disabled on both: its clients are closed with 1011 "plugin disabled"', async () => {
    const conns = await Promise.all(replicas.map((h) => echoOn(h, ops)));
    writeConfig('plugins:\n  echo:\n    enabled: false\n    roles: [ops]\n');
    const closes = await Promise.all(conns.map((c) => c.closed));
    expect(closes).toEqual([
      { code: 1011, reason: 'plugin disabled' },
      { code: 1011, reason: 'plugin disabled' },
    ]);
    await bothConverge('echo disabled', async (h) => (await view(h, 'echo')).status === 'disabled');
  });

  it('an invalid file is reported on both and the last good config stays in force', async () => {
    const good = (await readyz(replicas[0])).config.generation;
    writeConfig('plugins:\n  echo:\n    enable: true\n');
    await bothConverge('invalid file reported', async (h) =>
      ((await readyz(h)).config.lastError ?? '').includes('plugins.echo.enable: unknown field'),
    );
    for (const host of replicas) {
      const ready = await readyz(host);
      expect(ready.status).toBe(200);
      expect(ready.config.generation).toBe(good);
      expect(await metric(host, 'portico_config_valid')).toBe(0);
      expect(await metric(host, 'portico_config_reload_failures_total')).toBe(1);
      expect((await view(host, 'echo')).status).toBe('disabled');
      expect(host.output()).toContain('plugins_config_invalid');
    }
  });

  it('a valid file again: both re-enable the plugin and it serves again', async () => {
    writeConfig('plugins:\n  echo:\n    enabled: true\n');
    await bothConverge('echo running', async (h) => (await view(h, 'echo')).status === 'running');
    for (const host of replicas) {
      expect(await metric(host, 'portico_config_valid')).toBe(1);
      expect((await readyz(host)).config.lastError).toBeUndefined();
      await echoOn(host, user);
    }
  });

  it('a secret changed in the mounted folder restarts the plugin on both', async () => {
    const tokenOf = async (host: PorticoProcess): Promise<string | undefined> => {
      const res = await http(host.baseUrl, 'GET', '/api/plugins/secret-env/rpc/env', {
        token: admin,
      });
      return res.status === 200 ? (res.json as { API_TOKEN?: string }).API_TOKEN : undefined;
    };
    await bothConverge('first token', async (h) => (await tokenOf(h)) === 'first-token');
    writeSecret('second-token');
    await bothConverge('second token', async (h) => (await tokenOf(h)) === 'second-token');
    expect(await Promise.all(replicas.map(tokenOf))).toEqual(['second-token', 'second-token']);
  });
});
