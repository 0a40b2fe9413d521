import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  appendFileSync,
  chownSync,
  constants,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { Client } from 'pg';

import { suiteHasEnded, track } from './leftovers';
import { freePort } from './portico-process';
import { isGone, waitFor } from './wait';

/**
 * Throwaway PostgreSQL servers for the tests: a fresh cluster in a temp dir, on a free loopback
 * port, with trust authentication for its own superuser `postgres`, stopped and removed after.
 *
 * One cluster per suite file (started in `beforeAll`, stopped in `afterAll`), not one for the
 * whole run from a Jest globalSetup: initdb + start measured 1.6-2.0 s here (initdb 1.3-1.7 s,
 * start 0.3 s, stop 0.15 s), small next to a suite that starts Portico processes, and a suite
 * that stops and starts its server (the "database went away" tests) must not take the database
 * away from suites running beside it in the other worker. A suite that needs several
 * independent states uses `createDatabase`; `npm test` and `npx jest <file>` need no setup.
 */

/** `pg_ctl stop -m`: fast closes sessions cleanly, immediate is a crash (recovery at start). */
export type StopMode = 'smart' | 'fast' | 'immediate';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser on the maintenance database. */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding everything (data dir, socket, log); gone after `stop`. */
  readonly dir: string;
  readonly dataDir: string;
  /** A URL for a new, empty database on this server (see `createDatabase`). */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server, keeping its data dir and port (default mode: fast). */
  stopServer(mode?: StopMode): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once it accepts connections. */
  startServer(): Promise<void>;
  /** `stopServer(mode)` then `startServer()`. */
  restart(mode?: StopMode): Promise<void>;
  /** True while a postmaster of this cluster runs. */
  isRunning(): boolean;
  /** Every process of this cluster still running: the postmaster and its children. */
  pids(): number[];
  /** The server log so far, for a failing test's message. */
  log(): string;
  /** Stops the server (immediate), waits until none of its processes is left, removes `dir`. */
  stop(): Promise<void>;
}

/** The installation's tools, all from one bin directory. */
interface Binaries {
  readonly initdb: string;
  readonly pgCtl: string;
}

/** How the tools are run: as ourselves, or (as root: initdb refuses root) as the postgres user. */
interface Runner {
  readonly prefix: readonly string[];
  /** Owner to give the temp dir when the tools run as another user. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

const DIR_PREFIX = 'portico-pg-';
/** Bound on every pg_ctl/initdb run and on the wait for a started server to accept connections. */
const TOOL_TIMEOUT_MS = 60_000;
const CONNECT_WAIT_MS = 30_000;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first `name` in PATH (or in `extra` directories), or undefined. */
function which(name: string, extra: readonly string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extra].filter((d) => d !== '');
  return dirs.map((d) => join(d, name)).find(isExecutable);
}

/** Major version directories under /usr/lib/postgresql (Debian, Ubuntu), newest first. */
function debianBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = readdirSync(root);
  } catch {
    return [];
  }
  return versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'));
}

/**
 * initdb, then pg_ctl and postgres next to it: found through PATH (following a symlink such as
 * /usr/local/bin/initdb to its installation), then in /usr/lib/postgresql/<version>/bin.
 */
function findBinaries(): Binaries | undefined {
  const inPath = which('initdb');
  const dirs = [
    ...(inPath !== undefined ? [dirname(realpathSync(inPath))] : []),
    ...debianBinDirs(),
  ];
  for (const dir of dirs) {
    const initdb = join(dir, 'initdb');
    const pgCtl = join(dir, 'pg_ctl');
    if (isExecutable(initdb) && isExecutable(pgCtl) && isExecutable(join(dir, 'postgres'))) {
      return { initdb, pgCtl };
    }
  }
  return undefined;
}

function idOf(user: string, flag: '-u' | '-g'): number | undefined {
  const out = spawnSync('id', [flag, user], { encoding: 'utf8' });
  return out.status === 0 ? Number(out.stdout.trim()) : undefined;
}

function findRunner(): Runner | string {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const uid = idOf('postgres', '-u');
  const gid = idOf('postgres', '-g');
  if (uid === undefined || gid === undefined) {
    return 'running as root, initdb refuses root, and there is no postgres user to run it as';
  }
  const sbin = ['/usr/sbin', '/sbin'];
  const runuser = which('runuser', sbin);
  if (runuser !== undefined)
    return { prefix: [runuser, '-u', 'postgres', '--'], owner: { uid, gid } };
  const setpriv = which('setpriv', sbin);
  if (setpriv !== undefined) {
    return {
      prefix: [setpriv, '--reuid=postgres', '--regid=postgres', '--init-groups'],
      owner: { uid, gid },
    };
  }
  return 'running as root and neither runuser nor setpriv (util-linux) is there to drop to postgres';
}

let probed: { binaries: Binaries; runner: Runner } | string | undefined;

function probe(): { binaries: Binaries; runner: Runner } | string {
  if (probed !== undefined) return probed;
  const binaries = findBinaries();
  if (binaries === undefined) {
    probed =
      'no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PATH or ' +
      '/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)';
    return probed;
  }
  const runner = findRunner();
  probed = typeof runner === 'string' ? runner : { binaries, runner };
  return probed;
}

/**
 * Why this machine cannot run a throwaway PostgreSQL, or undefined when it can (despite the
 * name: undefined means available). Suites skip on a reason; see `describeWithPostgres`.
 */
export function postgresAvailable(): string | undefined {
  const found = probe();
  return typeof found === 'string' ? found : undefined;
}

/**
 * `describe` where a throwaway PostgreSQL can run; elsewhere `describe.skip` with a loud warning,
 * or, with PORTICO_REQUIRE_POSTGRES=1 (.ci/run sets it), an error: CI must never skip silently.
 */
export function describeWithPostgres(suite: string): jest.Describe {
  const reason = postgresAvailable();
  if (reason === undefined) return describe;
  if (process.env.PORTICO_REQUIRE_POSTGRES === '1') {
    throw new Error(`${suite} needs PostgreSQL (PORTICO_REQUIRE_POSTGRES=1): ${reason}`);
  }
  console.warn(`\n\n*** SKIPPED: ${suite} cannot run: ${reason} ***\n\n`);
  return describe.skip;
}

/**
 * In a `describe`: a cluster started before the suite's tests and stopped after them; call the
 * returned function in a test or hook to get it.
 */
export function usePostgres(startTimeoutMs = 60_000): () => PostgresServer {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, startTimeoutMs);
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error('PostgreSQL was not started (beforeAll failed?)');
    return server;
  };
}

/** Runs an installation tool (as postgres when we are root); rejects with its output on failure. */
function runTool(runner: Runner, tool: string, args: readonly string[], cwd: string) {
  const [cmd, ...rest] = [...runner.prefix, tool, ...args];
  return new Promise<string>((resolvePromise, reject) => {
    execFile(
      cmd,
      rest,
      { cwd, timeout: TOOL_TIMEOUT_MS, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err === null) resolvePromise(stdout);
        else reject(new Error(`${basename(tool)} ${args.join(' ')}: ${err.message}\n${stderr}`));
      },
    );
  });
}

/** Pid of the running postmaster of `dataDir` (from postmaster.pid), or undefined. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && !isGone(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Processes of the cluster in `dataDir`: its postmaster and every child run with the data dir as
 * working directory, and show `postgres: <cluster_name>: ...` (cluster_name is the temp dir's
 * name) or `-D <dataDir>` on their command line.
 */
function clusterPids(dataDir: string, clusterName: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        // Not ours to inspect (another user's process as non-root): the command line decides.
      }
      if (
        (cwd === dataDir || cmdline.includes(dataDir) || cmdline.includes(`: ${clusterName}: `)) &&
        !isGone(pid)
      ) {
        pids.push(pid);
      }
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

/** Opens a client on `url`, runs `use`, always closes it. */
export async function withDatabase<T>(
  url: string,
  use: (client: Client) => Promise<T>,
): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A server going away between queries emits 'error' on an idle client; the query rejects too.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Creates a database on the server of `url` (superuser URL) and returns `url` pointing at it,
 * so that suites and tests sharing a server do not share state. `name`: lowercase identifier;
 * default a random one.
 */
export async function createDatabase(
  url: string,
  name = `t_${randomBytes(6).toString('hex')}`,
): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  await withDatabase(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  const target = new URL(url);
  target.pathname = `/${name}`;
  return target.toString();
}

/** Which client connections `backends` and `terminateBackends` pick (all given must match). */
export interface BackendFilter {
  /** Exactly this application_name. */
  readonly applicationName?: string;
  /** application_name LIKE this pattern (`portico-listen%`). */
  readonly applicationNameLike?: string;
  /** Connected to this database. */
  readonly database?: string;
}

export interface Backend {
  readonly pid: number;
  readonly applicationName: string;
  readonly database: string;
  readonly state: string | null;
}

const FILTER_SQL = `backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND ($1::text IS NULL OR application_name = $1)
  AND ($2::text IS NULL OR application_name LIKE $2)
  AND ($3::text IS NULL OR datname = $3)`;

function filterParams(where: BackendFilter): (string | null)[] {
  if (
    where.applicationName === undefined &&
    where.applicationNameLike === undefined &&
    where.database === undefined
  ) {
    throw new Error('a backend filter needs at least one criterion');
  }
  return [where.applicationName ?? null, where.applicationNameLike ?? null, where.database ?? null];
}

/** Client connections matching `where` on the server of `url` (to wait until one is there). */
export async function backends(url: string, where: BackendFilter): Promise<Backend[]> {
  const { rows } = await withDatabase(url, (c) =>
    c.query<{ pid: number; application_name: string; datname: string; state: string | null }>(
      `SELECT pid, application_name, datname, state FROM pg_stat_activity WHERE ${FILTER_SQL}`,
      filterParams(where),
    ),
  );
  return rows.map((r) => ({
    pid: r.pid,
    applicationName: r.application_name,
    database: r.datname,
    state: r.state,
  }));
}

/**
 * `pg_terminate_backend` on every client connection matching `where` (never the one it runs
 * on), as an administrator or a failover would cut them; waits up to 5 s for each backend to be
 * gone. Returns the pids terminated.
 */
export async function terminateBackends(url: string, where: BackendFilter): Promise<number[]> {
  const { rows } = await withDatabase(url, (c) =>
    c.query<{ pid: number; done: boolean }>(
      `SELECT pid, pg_terminate_backend(pid, 5000) AS done FROM pg_stat_activity
       WHERE ${FILTER_SQL}`,
      filterParams(where),
    ),
  );
  return rows.filter((r) => r.done).map((r) => r.pid);
}

/** Quotes a value for postgresql.conf. */
function confString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Stops and removes clusters a test run left behind when it was killed before its cleanup (the
 * postmaster runs in a session of its own, so Ctrl-C on Jest does not reach it): temp dirs of
 * this helper whose owner process is gone.
 */
async function sweepAbandoned(binaries: Binaries, runner: Runner): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    try {
      const owner = Number(readFileSync(join(dir, 'owner'), 'utf8'));
      if (!Number.isInteger(owner) || !isGone(owner)) continue;
      const dataDir = join(dir, 'data');
      if (postmasterPid(dataDir) !== undefined) {
        await runTool(
          runner,
          binaries.pgCtl,
          ['stop', '-D', dataDir, '-m', 'immediate', '-w'],
          dir,
        );
      }
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Not ours (no owner file yet, another user's): left alone.
    }
  }
}

/**
 * A fresh cluster in a new temp dir, started on a free 127.0.0.1 port, accepting connections.
 * Stopped by `stop()`, or after the suite if a test did not get there (test/helpers/leftovers.ts).
 */
export async function startPostgres(): Promise<PostgresServer> {
  if (suiteHasEnded()) throw new Error('the suite has ended: no new PostgreSQL');
  const found = probe();
  if (typeof found === 'string') throw new Error(`cannot start PostgreSQL: ${found}`);
  const { binaries, runner } = found;
  await sweepAbandoned(binaries, runner);

  // realpath: the processes' cwd (/proc/<pid>/cwd) shows the resolved path.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), DIR_PREFIX)));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  if (runner.owner !== undefined) chownSync(dir, runner.owner.uid, runner.owner.gid);
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const clusterName = basename(dir);
  const run = (tool: string, args: readonly string[]): Promise<string> =>
    runTool(runner, tool, args, dir);
  const remove = (): void => rmSync(dir, { recursive: true, force: true });

  let port = 0;
  let url = '';
  const setPort = async (): Promise<void> => {
    port = await freePort();
    // The last setting in the file wins: a retry on another port appends its own line.
    appendFileSync(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
    url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  };
  const readLog = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const startServer = async (): Promise<void> => {
    if (postmasterPid(dataDir) !== undefined) throw new Error('PostgreSQL is already running');
    await run(binaries.pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);
    await waitFor(
      () => withDatabase(url, async (c) => (await c.query('SELECT 1')).rowCount === 1),
      CONNECT_WAIT_MS,
      `PostgreSQL on port ${port} to accept connections`,
    );
  };
  const stopServer = async (mode: StopMode = 'fast'): Promise<void> => {
    if (postmasterPid(dataDir) === undefined) return;
    await run(binaries.pgCtl, ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '60']);
    await waitFor(
      () => clusterPids(dataDir, clusterName).length === 0,
      10_000,
      'the PostgreSQL processes to exit',
    );
  };

  try {
    await run(binaries.initdb, [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    // Trust for the local socket and 127.0.0.1 only: nothing else may connect.
    writeFileSync(
      join(dataDir, 'pg_hba.conf'),
      'local all all trust\nhost all all 127.0.0.1/32 trust\n',
    );
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# test/helpers/postgres.ts: a throwaway server. No fsync (only a machine crash would',
        '# lose data); commits stay synchronous, so even an immediate stop loses no commit.',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = ${confString(dir)}`,
        `cluster_name = ${confString(clusterName)}`,
        'fsync = off',
        'full_page_writes = off',
        'shared_buffers = 16MB',
        'max_connections = 100',
        '',
      ].join('\n'),
    );
    // A free port can be taken before the server binds it: another port, a few times.
    for (let attempt = 1; ; attempt++) {
      await setPort();
      try {
        await startServer();
        break;
      } catch (err) {
        const log = readLog();
        await stopServer('immediate').catch(() => undefined);
        if (attempt >= 3 || !/could not bind|address already in use/i.test(log)) {
          throw new Error(`${String(err)}\n--- server log ---\n${log}`);
        }
      }
    }
    if (suiteHasEnded()) throw new Error('the suite ended while PostgreSQL was starting');
  } catch (err) {
    await stopServer('immediate').catch(() => undefined);
    remove();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  let untrack = (): void => undefined;
  const server: PostgresServer = {
    url,
    port,
    dir,
    dataDir,
    createDatabase: (name) => createDatabase(url, name),
    stopServer,
    startServer,
    restart: async (mode) => {
      await stopServer(mode);
      await startServer();
    },
    isRunning: () => postmasterPid(dataDir) !== undefined,
    pids: () => clusterPids(dataDir, clusterName),
    log: readLog,
    stop: () => {
      stopped ??= (async () => {
        try {
          await stopServer('immediate');
        } catch {
          // pg_ctl failed: kill what is left, the postmaster first so nothing restarts.
          const pm = postmasterPid(dataDir);
          for (const pid of [
            ...(pm !== undefined ? [pm] : []),
            ...clusterPids(dataDir, clusterName),
          ]) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // Exited meanwhile.
            }
          }
          await waitFor(
            () => clusterPids(dataDir, clusterName).length === 0,
            10_000,
            'the PostgreSQL processes to be killed',
          );
        } finally {
          untrack();
          remove();
        }
      })();
      return stopped;
    },
  };
  untrack = track(() => server.stop());
  return server;
}
