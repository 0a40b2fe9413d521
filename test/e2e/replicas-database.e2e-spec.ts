import { randomBytes } from 'node:crypto';

import { mintToken } from '../../scripts/lib/token-minter';
import { LISTENER_APPLICATION_NAME } from '../../src/database/database-listener';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { allConverge, echoOn as echoOnHost } from '../helpers/replicas';
import {
  backends,
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  terminateBackends,
  withDatabase,
} from '../helpers/postgres';
import { TEST_JWT_SECRET } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { open, WsConnection } from '../helpers/ws-client';

/**
 * Two Portico processes on one PostgreSQL (DATABASE_URL), each with its own DATA_DIR as two pods
 * have: a change made through either is in force on both, also when the listener connection
 * was killed, and reads survive the database going away.
 */
describeWithPostgres('two replicas on one database')('two replicas on one database', () => {
  const user = mintToken(TEST_JWT_SECRET, { sub: 'user', roles: [] });
  const ops = mintToken(TEST_JWT_SECRET, { sub: 'ops-person', roles: ['ops'] });
  const admin = mintToken(TEST_JWT_SECRET, { sub: 'root', roles: ['admin'] });
  const secretsKey = randomBytes(32).toString('base64');
  let server: PostgresServer;
  let url: string;
  let plugins: { dir: string; remove(): void };
  let replicas: PorticoProcess[] = [];
  const sockets: WsConnection[] = [];

  const view = async (
    host: PorticoProcess,
  ): Promise<{ status: string; enabled: boolean; access: { roles: string[] } }> =>
    (await http(host.baseUrl, 'GET', '/api/plugins/echo', { token: admin })).json as {
      status: string;
      enabled: boolean;
      access: { roles: string[] };
    };
  const put = (host: PorticoProcess, what: 'enable' | 'access', body: object) =>
    http(host.baseUrl, 'PUT', `/api/plugins/echo/${what}`, { token: admin, body });
  const echoOn = (host: PorticoProcess, token: string): Promise<WsConnection> =>
    echoOnHost(host, token, sockets);
  const bothConverge = (what: string, check: (host: PorticoProcess) => Promise<boolean>) =>
    allConverge(replicas, what, check);

  beforeAll(async () => {
    server = await startPostgres();
    url = await server.createDatabase();
    plugins = pluginsDirWith(['bundled:echo', 'secret-env']);
    // The same SECRETS_KEY on both, as every replica of one deployment has.
    const env = { DATABASE_URL: url, LOG_LEVEL: 'info', SECRETS_KEY: secretsKey };
    replicas = await Promise.all([
      startPorticoProcess(plugins.dir, { env, capture: true }),
      startPorticoProcess(plugins.dir, { env, capture: true }),
    ]);
  }, 90_000);

  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await Promise.all(replicas.map((r) => r.stop()));
    plugins?.remove();
    await server?.stop();
  }, 60_000);

  it('/readyz names the database, never its credentials', async () => {
    for (const host of replicas) {
      const body = (await http(host.baseUrl, 'GET', '/readyz')).json as {
        details: { config: { source: string; database: string } };
      };
      expect(body.details.config).toMatchObject({ source: 'DATABASE' });
      expect(body.details.config.database).toMatch(/^127\.0\.0\.1:\d+\/t_/);
      expect(host.output()).not.toContain(url);
    }
  });

  it('one listener connection per replica, however many stores follow changes', async () => {
    const listeners = await backends(server.url, {
      applicationName: LISTENER_APPLICATION_NAME,
      database: new URL(url).pathname.slice(1),
    });
    expect(listeners).toHaveLength(2);
  });

  it('a secret set, changed and deleted through either replica: the plugin restarts with it on both', async () => {
    const tokenOf = async (host: PorticoProcess): Promise<string | undefined> => {
      const res = await http(host.baseUrl, 'GET', '/api/plugins/secret-env/rpc/env', {
        token: admin,
      });
      return res.status === 200 ? (res.json as { API_TOKEN?: string }).API_TOKEN : undefined;
    };
    const secret = (host: PorticoProcess, method: 'PUT' | 'DELETE', value?: string) =>
      http(host.baseUrl, method, '/api/plugins/secret-env/secrets/API_TOKEN', {
        token: admin,
        ...(value === undefined ? {} : { body: { value } }),
      });
    const first = `first-${randomBytes(6).toString('hex')}`;
    const second = `second-${randomBytes(6).toString('hex')}`;
    // Without its required secret the plugin does not run anywhere.
    for (const host of replicas) expect(await tokenOf(host)).toBeUndefined();

    expect((await secret(replicas[0], 'PUT', first)).status).toBe(204);
    let started = Date.now();
    await bothConverge('first value', async (h) => (await tokenOf(h)) === first);
    const firstMs = Date.now() - started;

    const conns = await Promise.all(
      replicas.map((h) => open(`${h.wsUrl}/plugin-ws/secret-env`, { token: admin })),
    );
    sockets.push(...conns);
    expect((await secret(replicas[1], 'PUT', second)).status).toBe(204);
    started = Date.now();
    await bothConverge('second value', async (h) => (await tokenOf(h)) === second);
    const secondMs = Date.now() - started;
    // The old servers were stopped for the restart: their clients were told (1012 restarting).
    const closes = await Promise.all(conns.map((c) => c.closed));
    expect(closes.map((c) => c.code)).toEqual([1012, 1012]);

    for (const host of replicas) {
      const plugin = (await http(host.baseUrl, 'GET', '/api/plugins/secret-env', {
        token: admin,
      })) as { json: { secrets: { key: string; set: boolean; source: string }[] } };
      expect(plugin.json.secrets.find((s) => s.key === 'API_TOKEN')).toMatchObject({
        set: true,
        source: 'store',
      });
      // Redacted from the plugin's output, never in the logs, never in the database.
      expect(host.output()).not.toContain(first);
      expect(host.output()).not.toContain(second);
    }
    const rows = await withDatabase(url, (c) => c.query('SELECT * FROM portico_plugin_secret'));
    expect(JSON.stringify(rows.rows)).not.toContain(second);

    expect((await secret(replicas[0], 'DELETE')).status).toBe(204);
    await bothConverge('value deleted', async (h) => (await tokenOf(h)) === undefined);
    process.stdout.write(
      `secret change in force on both replicas after ${firstMs} ms (set), ${secondMs} ms (changed)\n`,
    );
  }, 60_000);

  it('roles set through one replica: users who lost access are disconnected on both (4403)', async () => {
    const plain = await Promise.all(replicas.map((h) => echoOn(h, user)));
    const allowed = await Promise.all(replicas.map((h) => echoOn(h, ops)));
    expect((await put(replicas[0], 'access', { roles: ['ops'] })).status).toBe(200);
    const closes = await Promise.all(plain.map((c) => c.closed));
    expect(closes.map((c) => c.code)).toEqual([4403, 4403]);
    await bothConverge('roles [ops]', async (h) => (await view(h)).access.roles.join() === 'ops');
    for (const conn of allowed) {
      conn.ws.send('still here');
      expect((await conn.next()).data.toString()).toContain('still here');
    }
  });

  it('disabled through the other replica: clients on both closed 1011 "plugin disabled"', async () => {
    const conns = await Promise.all(replicas.map((h) => echoOn(h, ops)));
    expect((await put(replicas[1], 'enable', { enabled: false })).status).toBe(200);
    const closes = await Promise.all(conns.map((c) => c.closed));
    expect(closes).toEqual([
      { code: 1011, reason: 'plugin disabled' },
      { code: 1011, reason: 'plugin disabled' },
    ]);
    await bothConverge('echo disabled', async (h) => (await view(h)).status === 'disabled');
  });

  it("the listener's connection killed while a change is made: the replica still converges", async () => {
    const killed = await terminateBackends(server.url, {
      applicationName: LISTENER_APPLICATION_NAME,
    });
    expect(killed.length).toBeGreaterThanOrEqual(2);
    expect((await put(replicas[0], 'enable', { enabled: true })).status).toBe(200);
    await bothConverge('echo running again', async (h) => (await view(h)).status === 'running');
  });

  it('both replicas writing the same plugin at once: both writes accounted for', async () => {
    const [a, b] = await Promise.all([
      put(replicas[0], 'enable', { enabled: false }),
      put(replicas[1], 'access', { roles: ['admin', 'auditors'] }),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    await bothConverge('both writes', async (h) => {
      const v = await view(h);
      return !v.enabled && v.access.roles.join() === 'admin,auditors';
    });
  });

  it('the database stopped: reads still answer, writes get 503; started again: all recovers', async () => {
    const logBefore = replicas.map((h) => h.output().length);
    await server.stopServer('fast');
    try {
      for (const host of replicas) {
        expect((await view(host)).enabled).toBe(false);
        const refused = await put(host, 'enable', { enabled: true });
        expect(refused.status).toBe(503);
        expect(JSON.stringify(refused.json)).toContain('database is unavailable');
        const secret = await http(
          host.baseUrl,
          'PUT',
          '/api/plugins/secret-env/secrets/API_TOKEN',
          {
            token: admin,
            body: { value: 'during-the-outage' },
          },
        );
        expect(secret.status).toBe(503);
        expect(JSON.stringify(secret.json)).toContain('secrets cannot be changed now');
      }
    } finally {
      await server.startServer();
    }
    await waitFor(
      async () => (await put(replicas[0], 'enable', { enabled: true })).status === 200,
      20_000,
      'writes to work again',
    );
    await bothConverge(
      'echo running after the outage',
      async (h) => (await view(h)).status === 'running',
    );
    // The outage is logged once per replica, and its end (a replica whose own write went through
    // may converge before its listener is back: wait for that line).
    await allConverge(replicas, 'listener reconnected', (host) =>
      Promise.resolve(
        host
          .output()
          .slice(logBefore[replicas.indexOf(host)])
          .includes('"state_database_reconnected"'),
      ),
    );
    replicas.forEach((host, i) => {
      const since = host.output().slice(logBefore[i]);
      const outage = since.split('\n').filter((l) => l.includes('"state_database_unavailable"'));
      expect(outage).toHaveLength(1);
      expect(since).toContain('"state_database_reconnected"');
    });
  }, 60_000);

  it('a stream of changes through both replicas, listener and database killed mid-way: both end on the last write, open sockets unharmed', async () => {
    // Enabled first (the outage test above may leave it either way).
    await waitFor(
      async () => (await put(replicas[0], 'enable', { enabled: true })).status === 200,
      20_000,
      'echo enabled',
    );
    expect((await put(replicas[1], 'access', { roles: ['ops'] })).status).toBe(200);
    await bothConverge('echo running for ops', async (h) => {
      const v = await view(h);
      return v.status === 'running' && v.access.roles.join() === 'ops';
    });
    // ops is in every role list written below: these clients never lose access.
    const kept = await Promise.all(replicas.map((h) => echoOn(h, ops)));
    const database = new URL(url).pathname.slice(1);
    let last: string[] = [];
    for (let i = 0; i < 24; i++) {
      const roles = ['ops', `team-${i}`];
      const host = replicas[i % 2];
      if (i === 8)
        await terminateBackends(server.url, {
          applicationName: LISTENER_APPLICATION_NAME,
          database,
        });
      if (i === 16) {
        await server.stopServer('fast');
        // Refused, never half-applied; the database comes back before the next write.
        expect((await put(host, 'access', { roles })).status).toBe(503);
        await server.startServer();
        continue;
      }
      // Right after the restart the pool may still hold a dead connection: retry as a client would.
      await waitFor(
        async () => (await put(host, 'access', { roles })).status === 200,
        20_000,
        `write ${i}`,
      );
      last = roles;
    }
    await bothConverge(
      'the last write',
      async (h) => (await view(h)).access.roles.join() === last.join(),
    );
    for (const conn of kept) {
      conn.ws.send('after the churn');
      expect((await conn.next()).data.toString()).toContain('after the churn');
    }
  }, 90_000);
});
