import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Client } from 'pg';

import {
  backends,
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  terminateBackends,
  usePostgres,
} from '../helpers/postgres';
import { waitFor } from '../helpers/wait';

/**
 * The throwaway PostgreSQL of test/helpers/postgres.ts, which the shared-state suites rely on
 * to cut connections and stop the database under Portico: each operation does to a real server
 * what it says, and nothing of a cluster outlives `stop`.
 */

const describeIfPostgres = describeWithPostgres('the PostgreSQL test helper suite');

/** A connected client whose 'error' events are kept (an unhandled one would end the worker). */
async function connect(
  url: string,
  applicationName?: string,
): Promise<{
  client: Client;
  errors: Error[];
}> {
  const client = new Client({
    connectionString: url,
    application_name: applicationName,
    connectionTimeoutMillis: 5_000,
  });
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  await client.connect();
  return { client, errors };
}

/** Processes whose command line names the cluster, as `ps` sees them (independent of the helper). */
function psLinesOf(dir: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((line) => line.includes(basename(dir)));
}

describeIfPostgres('throwaway PostgreSQL (test/helpers/postgres.ts)', () => {
  const server = usePostgres();
  let pg: PostgresServer;
  const clients: Client[] = [];

  beforeEach(() => {
    pg = server();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  });

  it('accepts the superuser on 127.0.0.1 at its URL', async () => {
    const { client } = await connect(pg.url);
    clients.push(client);
    const { rows } = await client.query<{ user: string; addr: string; version: number }>(
      `SELECT current_user AS user, host(inet_server_addr()) AS addr,
              current_setting('server_version_num')::int AS version`,
    );
    expect(pg.url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/postgres`);
    expect(rows[0].user).toBe('postgres');
    expect(rows[0].addr).toBe('127.0.0.1');
    expect(rows[0].version).toBeGreaterThanOrEqual(150000);
  });

  it('creates a fresh database per call, sharing no tables', async () => {
    const first = await pg.createDatabase();
    const second = await pg.createDatabase('named_db');
    expect(first).not.toBe(second);
    expect(new URL(second).pathname).toBe('/named_db');
    const a = await connect(first);
    const b = await connect(second);
    clients.push(a.client, b.client);
    await a.client.query('CREATE TABLE only_here (x int)');
    const { rows } = await b.client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'only_here'",
    );
    expect(rows[0].n).toBe(0);
    await expect(pg.createDatabase('named_db')).rejects.toThrow(/already exists/);
  });

  it('terminates the backends of one application_name; their client gets an error, others keep working', async () => {
    const victim = await connect(pg.url, 'portico-listener-test');
    const bystander = await connect(pg.url, 'bystander');
    clients.push(victim.client, bystander.client);
    const before = await backends(pg.url, { applicationName: 'portico-listener-test' });
    expect(before).toHaveLength(1);

    const killed = await terminateBackends(pg.url, { applicationNameLike: 'portico-listener%' });

    expect(killed).toEqual([before[0].pid]);
    await waitFor(() => victim.errors.length > 0, 10_000, "the victim's error event");
    expect((victim.errors[0] as Error & { code?: string }).code).toBe('57P01');
    await expect(victim.client.query('SELECT 1')).rejects.toThrow();
    const { rows } = await bystander.client.query<{ one: number }>('SELECT 1 AS one');
    expect(rows[0].one).toBe(1);
    await expect(backends(pg.url, { applicationName: 'portico-listener-test' })).resolves.toEqual(
      [],
    );
  });

  it('refuses a filter that would match every connection', async () => {
    await expect(terminateBackends(pg.url, {})).rejects.toThrow(/at least one criterion/);
  });

  it('stops and starts on the same port and data dir, keeping committed data', async () => {
    const dbUrl = await pg.createDatabase();
    const before = await connect(dbUrl);
    await before.client.query('CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)');
    const port = pg.port;

    await pg.stopServer('immediate');

    expect(pg.isRunning()).toBe(false);
    expect(pg.pids()).toEqual([]);
    await waitFor(() => before.errors.length > 0, 10_000, "the connected client's error");
    await before.client.end().catch(() => undefined);
    await expect(connect(dbUrl)).rejects.toThrow(/ECONNREFUSED/);

    await pg.startServer();

    expect(pg.port).toBe(port);
    expect(pg.isRunning()).toBe(true);
    const after = await connect(dbUrl);
    clients.push(after.client);
    const { rows } = await after.client.query<{ x: number }>('SELECT x FROM kept');
    expect(rows).toEqual([{ x: 42 }]);
  });

  it('restarts in fast mode and accepts connections again', async () => {
    await pg.restart('fast');
    const { client } = await connect(pg.url);
    clients.push(client);
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    expect(rows[0].one).toBe(1);
  });

  it('leaves no process of the cluster and removes its directory once stopped', async () => {
    const other = await startPostgres();
    const { client } = await connect(other.url, 'held-open');
    clients.push(client);
    expect(other.pids().length).toBeGreaterThan(1);
    expect(psLinesOf(other.dir).length).toBeGreaterThan(1);

    await other.stop();
    await other.stop();

    expect(other.pids()).toEqual([]);
    expect(psLinesOf(other.dir)).toEqual([]);
    expect(existsSync(other.dir)).toBe(false);
    expect(pg.isRunning()).toBe(true);
  });
});
