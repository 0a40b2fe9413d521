import { Logger } from '@nestjs/common';
import { Pool } from 'pg';

import { migrate } from '../../src/database/migrate';
import { MIGRATIONS } from '../../src/database/migrations';
import { DatabaseListener, LISTENER_APPLICATION_NAME } from '../../src/database/database-listener';
import { PgPluginStateStore } from '../../src/plugins/manifest/pg-state.store';
import { PluginException, PluginExceptionCode } from '../../src/plugins/shared/plugin.exception';
import {
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  terminateBackends,
} from '../helpers/postgres';
import { waitFor } from '../helpers/wait';

/**
 * The PostgreSQL plugin-state store against a real PostgreSQL: migrations, field-wise writes
 * from several replicas, change notification, a killed listener, a database that goes away.
 */
describeWithPostgres('PgPluginStateStore (real PostgreSQL)')('PgPluginStateStore', () => {
  let server: PostgresServer;
  let url: string;
  const pools: Pool[] = [];
  const unwatch: (() => void)[] = [];

  const store = (): PgPluginStateStore => {
    const pool = new Pool({ connectionString: url, max: 4 });
    // A pooled connection the server closes (restart, terminate) must not crash the test.
    pool.on('error', () => undefined);
    pools.push(pool);
    return new PgPluginStateStore(
      pool,
      'test',
      new DatabaseListener({ connectionString: url }, 'test'),
    );
  };

  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);

  beforeEach(async () => {
    url = await server.createDatabase();
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(async () => {
    for (const stop of unwatch.splice(0)) stop();
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    jest.restoreAllMocks();
  });

  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  it('migrations apply once, also when two replicas start together', async () => {
    const a = new Pool({ connectionString: url });
    const b = new Pool({ connectionString: url });
    pools.push(a, b);
    const [first, second] = await Promise.all([migrate(a), migrate(b)]);
    const versions = MIGRATIONS.map((m) => m.version);
    expect(versions.length).toBeGreaterThanOrEqual(2);
    expect([...first, ...second].sort()).toEqual(versions);
    // Every migration ran in one of the two, and the other found nothing left to do.
    expect([first.length, second.length].sort()).toEqual([0, versions.length]);
    expect(await migrate(a)).toEqual([]);
    const rows = await a.query('SELECT version FROM portico_schema_migrations ORDER BY version');
    expect(rows.rows).toEqual(versions.map((version) => ({ version })));
  });

  it('a schema newer than this Portico knows → refused, nothing changed', async () => {
    const pool = new Pool({ connectionString: url });
    pools.push(pool);
    await migrate(pool);
    await pool.query("INSERT INTO portico_schema_migrations (version, name) VALUES (99, 'future')");
    await expect(migrate(pool)).rejects.toThrow(/version 99, newer than this Portico knows/);
  });

  it('writes change only the fields they name; a plugin never written has no row', async () => {
    const s = store();
    await migrate(pools[0]);
    expect(await s.load()).toEqual(new Map());
    expect(await s.patch('echo', { enabled: false })).toEqual({ enabled: false });
    expect(await s.patch('echo', { roles: ['ops', 'admin'] })).toEqual({
      enabled: false,
      roles: ['ops', 'admin'],
    });
    expect(await s.patch('echo', { enabled: true })).toEqual({
      enabled: true,
      roles: ['ops', 'admin'],
    });
    expect((await s.load()).get('echo')).toEqual({ enabled: true, roles: ['ops', 'admin'] });
    expect(s.describe()).toMatchObject({ source: 'DATABASE', appliedGeneration: 3 });
  });

  it('two replicas writing the same plugins at once: no write is lost', async () => {
    const a = store();
    const b = store();
    await migrate(pools[0]);
    const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
    await Promise.all(
      names.flatMap((name) => [
        a.patch(name, { enabled: false }),
        b.patch(name, { roles: ['ops'] }),
      ]),
    );
    const states = await a.load();
    for (const name of names) expect(states.get(name)).toEqual({ enabled: false, roles: ['ops'] });
    const generations = await pools[0].query<{ n: string }>(
      'SELECT count(DISTINCT generation) AS n FROM portico_plugin_state',
    );
    expect(Number(generations.rows[0].n)).toBe(names.length);
  });

  it('a change through one replica reaches the other by notification', async () => {
    const writer = store();
    const reader = store();
    await migrate(pools[0]);
    let changes = 0;
    unwatch.push(reader.watch(() => changes++));
    // The first call comes when the listener is connected (it reloads everything then).
    await waitFor(() => changes >= 1, 10_000, 'the listener to connect');
    const before = changes;
    await writer.patch('echo', { enabled: false });
    await waitFor(() => changes > before, 10_000, 'the notification');
    expect((await reader.load()).get('echo')).toEqual({ enabled: false });
  });

  it('the listener connection killed while a change is made → it reconnects and reloads', async () => {
    const writer = store();
    const reader = store();
    await migrate(pools[0]);
    let changes = 0;
    unwatch.push(reader.watch(() => changes++));
    await waitFor(() => changes >= 1, 10_000, 'the listener to connect');
    const killed = await terminateBackends(server.url, {
      applicationName: LISTENER_APPLICATION_NAME,
      database: new URL(url).pathname.slice(1),
    });
    expect(killed).toHaveLength(1);
    const before = changes;
    // Made while no one listens: its NOTIFY reaches nobody.
    await writer.patch('echo', { roles: ['ops'] });
    await waitFor(() => changes > before, 15_000, 'the listener to reconnect');
    expect((await reader.load()).get('echo')).toEqual({ enabled: true, roles: ['ops'] });
  });

  it('the database stopped: writes get 503 STATE_UNAVAILABLE; started again: all recovers', async () => {
    const s = store();
    await migrate(pools[0]);
    await s.patch('echo', { enabled: false });
    let changes = 0;
    unwatch.push(s.watch(() => changes++));
    await waitFor(() => changes >= 1, 10_000, 'the listener to connect');
    // Counted before the stop: the listener may well reconnect before startServer() returns.
    const before = changes;
    await server.stopServer('fast');
    try {
      const refused = await s.patch('echo', { enabled: true }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(PluginException);
      expect((refused as PluginException).code).toBe(PluginExceptionCode.STATE_UNAVAILABLE);
    } finally {
      await server.startServer();
    }
    await waitFor(() => changes > before, 20_000, 'the listener to reconnect').catch(
      (err: Error) => {
        // What the server said while it came back, for whoever reads a failure.
        throw new Error(`${err.message}\n--- server log ---\n${server.log().slice(-3000)}`);
      },
    );
    expect(await s.patch('echo', { enabled: true })).toEqual({ enabled: true });
  }, 60_000);
});
