/**
 * `npm run bench [-- --quick] [--targets direct,nginx,portico] [--scenarios latency,...]
 *  [--runs 3] [--no-warmup] [--docs|--no-docs] [--keep-tmp] [--cpu-prof] [--render results.json]
 *  [--storm-clients N] [--storm-per-address N]`
 *
 * Starts an echo plugin, nginx in front of it and Portico (which runs its own echo), pins the
 * servers to one CPU and a load client to another, runs every scenario on every target, and
 * writes bench/results/<timestamp>.json, docs/benchmarks.md, docs/benchmarks.svg and the README's
 * performance summary.
 * Started through bench/run.sh, which raises the open-file limit first.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { get } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { performance } from 'node:perf_hooks';

import { mintToken } from '../scripts/lib/token-minter';
import {
  EARLIER_GOALS,
  goalsTable,
  idleStepsTable,
  machineLines,
  medians,
  Report,
  resultsTable,
  RunRecord,
  stormTable,
  writeDocs,
} from './report';
import { processCpuMs, systemCpuMs } from './scenarios';
import {
  alive,
  children,
  descendants,
  freePort,
  Server,
  ServerSet,
  sleep,
  waitForLine,
  waitUntil,
} from './servers';
import {
  ClientReply,
  ClientRequest,
  Metrics,
  SCENARIOS,
  ScenarioName,
  ScenarioParams,
  TargetEndpoint,
  TARGETS,
  TargetName,
  warmupParams,
} from './types';

const ROOT = resolve(__dirname, '..');

/** The Node flags of package.json's `start` script (`node <flags> dist/main.js`), as the image runs them. */
function porticoNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf('dist/main.js'));
}
const IDLE_WANTED = 10000;
const STORM_WANTED = 10000;

const FULL: ScenarioParams = {
  messageBytes: 64,
  latencyRoundTrips: 10000,
  latencyWarmup: 500,
  msgrateConnections: 50,
  msgrateInFlight: 16,
  warmupSeconds: 1,
  msgrateSeconds: 8,
  bulkConnections: 4,
  bulkMessageBytes: 1024 * 1024,
  bulkSeconds: 8,
  connectCount: 1000,
  connectWarmup: 200,
  connectConcurrency: 20,
  idleConnections: IDLE_WANTED,
  idleSettleMs: 2000,
  rateConnections: 1000,
  rateWarmupSeconds: 2,
  rateSeconds: 10,
  stormClients: STORM_WANTED,
  stormClientsPerAddress: 32,
  stormTimeoutMs: 60000,
  stallMs: 10000,
};

const QUICK: ScenarioParams = {
  ...FULL,
  latencyRoundTrips: 1000,
  latencyWarmup: 100,
  warmupSeconds: 0.5,
  msgrateSeconds: 2,
  bulkSeconds: 2,
  connectCount: 200,
  connectWarmup: 50,
  idleConnections: 2000,
  idleSettleMs: 1000,
  rateWarmupSeconds: 1,
  rateSeconds: 4,
  stormClients: 1000,
};

interface Options {
  quick: boolean;
  warmup: boolean;
  targets: TargetName[];
  scenarios: ScenarioName[];
  runs: number;
  docs: boolean;
  keepTmp: boolean;
  cpuProf: boolean;
  render: string | undefined;
  /** Storm clients per loopback source address (default: the scenario's own, 32). */
  stormPerAddress: number | undefined;
  /** Storm clients (default: 10,000 bounded by the open-file limit; quick: 1,000). */
  stormClients: number | undefined;
  /** Idle connections (default: 10,000 bounded by the open-file limit; quick: 2,000). */
  idleConnections: number | undefined;
  args: string[];
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function parseList<T extends string>(
  raw: string | undefined,
  all: readonly T[],
  what: string,
): T[] {
  if (raw === undefined) return [...all];
  const picked = raw.split(',').map((s) => s.trim()) as T[];
  for (const p of picked)
    if (!all.includes(p)) throw new Error(`unknown ${what} "${p}" (choose from ${all.join(', ')})`);
  // Keep the canonical order.
  return all.filter((a) => picked.includes(a));
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      warmup: { type: 'boolean' },
      'no-warmup': { type: 'boolean' },
      targets: { type: 'string' },
      scenarios: { type: 'string' },
      runs: { type: 'string' },
      docs: { type: 'boolean' },
      'no-docs': { type: 'boolean' },
      'keep-tmp': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      render: { type: 'string' },
      'storm-per-address': { type: 'string' },
      'storm-clients': { type: 'string' },
      'idle-connections': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const quick = values.quick === true;
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 9)
    throw new Error('--runs must be a whole number from 1 to 9');
  const perAddress =
    values['storm-per-address'] === undefined ? undefined : Number(values['storm-per-address']);
  if (perAddress !== undefined && (!Number.isInteger(perAddress) || perAddress < 1))
    throw new Error('--storm-per-address must be a whole number of at least 1');
  const count = (name: 'storm-clients' | 'idle-connections'): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--${name} must be a whole number of at least 1`);
    return n;
  };
  const stormClients = count('storm-clients');
  const idleConnections = count('idle-connections');
  const targets = parseList(values.targets, TARGETS, 'target');
  const scenarios = parseList(values.scenarios, SCENARIOS, 'scenario');
  const complete = targets.length === TARGETS.length && scenarios.length === SCENARIOS.length;
  // Only a complete full run replaces the published numbers, unless asked otherwise.
  const docs = values['no-docs'] ? false : (values.docs ?? (!quick && complete));
  return {
    quick,
    // On by default for a full run; a quick smoke run skips it unless asked.
    warmup: values['no-warmup'] ? false : (values.warmup ?? !quick),
    targets,
    scenarios,
    runs,
    docs,
    keepTmp: values['keep-tmp'] === true,
    cpuProf: values['cpu-prof'] === true,
    render: values.render,
    stormPerAddress: perAddress,
    stormClients,
    idleConnections,
    args: argv,
  };
}

// ---------------------------------------------------------------------------------------------
// Failure plumbing: anything fatal (a server exiting, the client dying, Ctrl-C, the watchdog)
// rejects `fatal`, and every long wait races against it.

let rejectFatal: (err: Error) => void = () => undefined;
const fatal = new Promise<never>((_, reject) => {
  rejectFatal = reject;
});
fatal.catch(() => undefined);

function guard<T>(promise: Promise<T>): Promise<T> {
  return Promise.race([promise, fatal]);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Machine

function allowedCpus(): number[] {
  const status = readFileSync('/proc/self/status', 'utf8');
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1] ?? '';
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

function openFileLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  return soft === undefined || soft === 'unlimited' ? 1048576 : Number(soft);
}

function cpuModel(): string {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? cpus()[0]?.model ?? 'unknown CPU';
}

function nginxVersion(): string {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout).trim().replace(/^nginx version:\s*/, '') || 'nginx (unknown)';
}

function porticoRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT })
      .toString()
      .trim();
    const n = dirty === '' ? 0 : dirty.split('\n').length;
    return n === 0
      ? `commit ${head}`
      : `commit ${head} plus uncommitted changes to ${n} file(s) under src/`;
  } catch {
    return 'unknown revision';
  }
}

function ensureNginx(): void {
  if (spawnSync('nginx', ['-v']).status === 0) return;
  say('nginx is not installed: apt-get update && apt-get install -y nginx');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'nginx']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status})`);
  }
  if (spawnSync('nginx', ['-v']).status !== 0) throw new Error('nginx still not runnable');
}

function buildPortico(): void {
  say('building Portico (npm run build) ...');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    const out = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`npm run build failed, so Portico cannot be benchmarked:\n${out}`);
  }
  if (!existsSync(join(ROOT, 'dist', 'main.js')))
    throw new Error('dist/main.js missing after build');
}

// ---------------------------------------------------------------------------------------------
// Probes

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolveProbe(true);
    });
    socket.once('error', () => resolveProbe(false));
  });
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolveProbe, reject) => {
    const req = get(url, (res) => {
      res.resume();
      resolveProbe(res.statusCode ?? 0);
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// Servers

/**
 * With --cpu-prof Portico runs under `node --cpu-prof`. V8 writes the profile only on a normal
 * exit, but Nest re-raises SIGTERM after closing, which would kill the process first; this
 * preloaded hook turns that second SIGTERM into process.exit(0).
 */
const CPU_PROF_EXIT_HOOK =
  'data:text/javascript,let n=0;process.on("SIGTERM",()=>{if(++n>1)process.exit(0);' +
  'setTimeout(()=>process.exit(0),8000).unref()})';

interface Echo {
  server: Server;
  port: number;
}

/** A target ready to be measured and the servers that make it up. */
interface Launched {
  endpoint: TargetEndpoint;
  servers: Server[];
}

/** Starts echo upstreams, nginx and Portico, each under a unique name and folder. */
class Launcher {
  public constructor(
    private readonly servers: ServerSet,
    private readonly tmp: string,
    private readonly nofile: number,
  ) {}

  public async echo(name: string): Promise<Echo> {
    const server = this.servers.start(
      name,
      process.execPath,
      [join(ROOT, 'plugins/echo/server.js')],
      {
        cwd: join(ROOT, 'plugins/echo'),
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      },
    );
    const line = await guard(waitForLine(server, /"ready"\s*:\s*true/, 10000));
    const port = Number((JSON.parse(line) as { port: number }).port);
    return { server, port };
  }

  public direct(echo: Echo): Launched {
    return {
      endpoint: {
        name: 'direct',
        url: `ws://127.0.0.1:${echo.port}/ws`,
        headers: {},
        proxyPid: echo.server.pid,
      },
      servers: [echo.server],
    };
  }

  public async nginx(name: string, echo: Echo): Promise<Launched> {
    const prefix = join(this.tmp, name);
    mkdirSync(prefix, { recursive: true });
    const port = await freePort();
    const conf = readFileSync(join(ROOT, 'bench/nginx.conf.template'), 'utf8')
      .replace(/\{\{PREFIX\}\}/g, prefix)
      .replace(/\{\{PORT\}\}/g, String(port))
      .replace(/\{\{ECHO_PORT\}\}/g, String(echo.port))
      .replace(/\{\{NOFILE\}\}/g, String(this.nofile))
      // nginx starts closing connections that wait for a request once fewer than 1/16 of
      // worker_connections are free, so leave headroom above the two per proxied connection.
      .replace(
        /\{\{WORKER_CONNECTIONS\}\}/g,
        String(Math.max(32768, Math.min(this.nofile, 262144))),
      );
    const confFile = join(prefix, 'nginx.conf');
    writeFileSync(confFile, conf);
    const server = this.servers.start(
      name,
      'nginx',
      ['-p', `${prefix}/`, '-c', confFile, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'],
      { cwd: prefix },
    );
    await guard(waitUntil(server, `nginx listening on ${port}`, () => tcpOpen(port), 10000));
    await guard(
      waitUntil(server, 'one nginx worker', async () => children(server.pid).length === 1, 5000),
    );
    return {
      endpoint: {
        name: 'nginx',
        url: `ws://127.0.0.1:${port}/plugin-ws/echo`,
        headers: {},
        proxyPid: children(server.pid)[0],
        upstreamPid: echo.server.pid,
        upstreamPort: echo.port,
      },
      servers: [server],
    };
  }

  /** bench/splice.js: a bare Node byte splice with a JWT check, the floor for a Node relay. */
  public async splice(name: string, echo: Echo): Promise<Launched> {
    const port = await freePort();
    const secret = randomBytes(36).toString('base64url');
    const server = this.servers.start(name, process.execPath, [join(ROOT, 'bench/splice.js')], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PORT: String(port),
        UPSTREAM_PORT: String(echo.port),
        JWT_SECRET: secret,
      },
    });
    await guard(waitForLine(server, /"ready"\s*:\s*true/, 10000));
    const token = mintToken(secret, { sub: 'bench', roles: [], expiresInSeconds: 6 * 3600 });
    return {
      endpoint: {
        name: 'splice',
        url: `ws://127.0.0.1:${port}/plugin-ws/echo`,
        headers: { Authorization: `Bearer ${token}` },
        proxyPid: server.pid,
        upstreamPid: echo.server.pid,
        jwtSecret: secret,
        upstreamPort: echo.port,
      },
      servers: [server],
    };
  }

  public async portico(name: string, cpuProfDir?: string): Promise<Launched> {
    const home = join(this.tmp, name);
    const pluginsDir = join(home, 'plugins');
    const dataDir = join(home, 'data');
    mkdirSync(pluginsDir, { recursive: true });
    mkdirSync(dataDir, { recursive: true });
    symlinkSync(join(ROOT, 'plugins/echo'), join(pluginsDir, 'echo'));
    const port = await freePort();
    const secret = randomBytes(36).toString('base64url'); // 48 characters
    // Portico runs with the Node flags `npm start` and the image use; BENCH_PORTICO_NODE_ARGS
    // adds more for investigations, e.g. `--trace-gc` (in its log).
    const extraArgs = [
      ...porticoNodeFlags(),
      ...(process.env.BENCH_PORTICO_NODE_ARGS ?? '').split(' ').filter(Boolean),
    ];
    const nodeArgs = cpuProfDir
      ? [...extraArgs, '--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--import', CPU_PROF_EXIT_HOOK]
      : extraArgs;
    const server = this.servers.start(
      name,
      process.execPath,
      [...nodeArgs, join(ROOT, 'dist/main.js')],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/tmp',
          NODE_ENV: 'production',
          PORT: String(port),
          HOST: '127.0.0.1',
          PLUGINS_DIR: pluginsDir,
          DATA_DIR: dataDir,
          JWT_SECRET: secret,
          SECRETS_KEY: randomBytes(32).toString('base64'),
          LOG_LEVEL: 'warn',
          SHUTDOWN_GRACE_MS: '3000',
        },
      },
    );
    const readyz = `http://127.0.0.1:${port}/readyz`;
    await guard(
      waitUntil(server, `GET ${readyz} 200`, async () => (await httpStatus(readyz)) === 200, 30000),
    );
    const token = mintToken(secret, { sub: 'bench', roles: [], expiresInSeconds: 6 * 3600 });
    const echoPid = porticoEchoPid(server.pid);
    return {
      endpoint: {
        name: 'portico',
        url: `ws://127.0.0.1:${port}/plugin-ws/echo`,
        headers: { Authorization: `Bearer ${token}` },
        proxyPid: server.pid,
        upstreamPid: echoPid,
        jwtSecret: secret,
        upstreamPort: echoPid === undefined ? undefined : listeningPort(echoPid),
      },
      servers: [server],
    };
  }

  /**
   * A fresh chain for the idle scenario: RSS only shows what new connections cost in a process
   * that never held that many before (freed memory stays in RSS and would be reused).
   */
  public async fresh(target: TargetName, label: string): Promise<Launched> {
    if (target === 'portico') return this.portico(`portico-${label}`);
    const echo = await this.echo(`echo-${label}-${target}`);
    if (target === 'direct') return this.direct(echo);
    const proxy =
      target === 'splice'
        ? await this.splice(`splice-${label}`, echo)
        : await this.nginx(`nginx-${label}`, echo);
    return { endpoint: proxy.endpoint, servers: [...proxy.servers, echo.server] };
  }
}

/** Portico's echo child (its pid changes if the plugin is restarted). */
function porticoEchoPid(porticoPid: number): number | undefined {
  for (const pid of descendants(porticoPid)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server.js')) return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}

/** The TCP port process `pid` listens on (from `ss -ltnp`), if exactly one is found. */
function listeningPort(pid: number): number | undefined {
  const r = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  const ports = new Set<number>();
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const local = line.trim().split(/\s+/)[3] ?? '';
    ports.add(Number(local.slice(local.lastIndexOf(':') + 1)));
  }
  return ports.size === 1 ? [...ports][0] : undefined;
}

/**
 * Sockets on any of `ports` that are neither listening nor in TIME_WAIT: connections of an
 * earlier scenario that are still open or closing.
 */
function liveSockets(ports: number[]): number {
  if (ports.length === 0) return 0;
  const filter = `( ${ports.map((p) => `sport = :${p} or dport = :${p}`).join(' or ')} )`;
  const r = spawnSync('ss', ['-tanH', filter], { encoding: 'utf8' });
  if (r.status !== 0) return 0;
  return r.stdout
    .split('\n')
    .filter((line) => line.trim() !== '' && !/^(LISTEN|TIME-WAIT)\s/.test(line.trim())).length;
}

/**
 * Before a storm: waits (up to 60 s) until no connection of an earlier scenario is left on any
 * target's or upstream's port, so that every storm meets servers in the same state.
 */
async function waitForSocketsGone(ports: number[], label: string): Promise<void> {
  const deadline = Date.now() + 60000;
  let live = liveSockets(ports);
  while (live > 0 && Date.now() < deadline) {
    await guard(sleep(250));
    live = liveSockets(ports);
  }
  if (live > 0) say(`warning: ${live} sockets of earlier scenarios still open before ${label}`);
}

/** The port of a ws:// URL. */
function urlPort(url: string): number {
  return Number(new URL(url).port);
}

// ---------------------------------------------------------------------------------------------
// Load client

/** What the load client answers for one scenario. */
interface ScenarioResult {
  metrics: Metrics;
  notes: string[];
}

class LoadClient {
  private readonly pending = new Map<
    number,
    { resolve: (r: ScenarioResult) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private exiting = false;
  private readonly ready: Promise<void>;

  public constructor(private readonly proc: ChildProcess) {
    let markReady: () => void = () => undefined;
    this.ready = new Promise((r) => (markReady = r));
    proc.on('message', (msg: ClientReply) => {
      if (msg.type === 'ready') return markReady();
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.type === 'result') waiter.resolve({ metrics: msg.metrics, notes: msg.notes ?? [] });
      else waiter.reject(new Error(msg.message));
    });
    proc.on('exit', (code, signal) => {
      if (!this.exiting)
        rejectFatal(new Error(`load client exited unexpectedly (code ${code}, signal ${signal})`));
    });
  }

  public static start(cpu: number | undefined): LoadClient {
    const nodeArgs = [
      '--expose-gc',
      '-r',
      'ts-node/register/transpile-only',
      join(ROOT, 'bench/client.ts'),
    ];
    const [cmd, args] =
      cpu === undefined
        ? [process.execPath, nodeArgs]
        : ['taskset', ['-c', String(cpu), process.execPath, ...nodeArgs]];
    const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new LoadClient(proc);
  }

  public get pid(): number | undefined {
    return this.proc.pid;
  }

  public async run(
    scenario: ScenarioName | 'preflight',
    target: TargetEndpoint,
    params: ScenarioParams,
  ): Promise<ScenarioResult> {
    await guard(withTimeout(this.ready, 30000, 'load client start'));
    const id = this.nextId++;
    const request: ClientRequest = { type: 'run', id, scenario, target, params };
    const result = new Promise<ScenarioResult>((resolveRun, reject) => {
      this.pending.set(id, { resolve: resolveRun, reject });
    });
    this.proc.send(request);
    return result;
  }

  public stop(): void {
    this.exiting = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * Other people's work on the machine skews every number, so before each measurement wait (within
 * a budget for the whole invocation) until the CPUs have been nearly idle for half a second.
 */
class QuietGate {
  public constructor(
    private budgetMs: number,
    /** Our own processes (harness, client, servers and their children): not "other" load. */
    private readonly ownPids: () => number[],
  ) {}

  private ownCpuMs(): number {
    let total = 0;
    for (const pid of this.ownPids()) {
      try {
        total += processCpuMs(pid);
      } catch {
        // gone
      }
    }
    return total;
  }

  /** CPU used by other processes over `ms`, in % of one core. */
  private async sample(ms: number): Promise<number> {
    const sys0 = systemCpuMs().busy;
    const own0 = this.ownCpuMs();
    const t = performance.now();
    await guard(sleep(ms));
    const other = systemCpuMs().busy - sys0 - (this.ownCpuMs() - own0);
    return Math.max(0, (100 * other) / (performance.now() - t));
  }

  public async wait(label: string): Promise<void> {
    const started = Date.now();
    let warned = false;
    for (;;) {
      const busy = await this.sample(500);
      const waited = Date.now() - started;
      if (busy < 15) break;
      if (waited >= Math.min(this.budgetMs, 60000)) {
        say(
          `warning: machine still busy (${busy.toFixed(0)}% of a core) — measuring ${label} anyway`,
        );
        break;
      }
      if (!warned)
        say(`machine busy (${busy.toFixed(0)}% of a core used by other processes), waiting ...`);
      warned = true;
    }
    this.budgetMs = Math.max(0, this.budgetMs - (Date.now() - started));
  }
}

/** Upper bound for one scenario on one target before the harness calls it stuck. */
function scenarioBudgetMs(s: ScenarioName, p: ScenarioParams): number {
  const base = 60000;
  switch (s) {
    case 'msgrate':
      return base + (p.warmupSeconds + p.msgrateSeconds) * 1000;
    case 'bulk':
      return base + (p.warmupSeconds + p.bulkSeconds) * 1000;
    case 'idle':
      // Up to six checkpoints, each settling for a few seconds, and the connections themselves.
      return base + p.idleSettleMs + 60000 + 6 * 8000 + p.idleConnections * 5;
    case 'rate5':
    case 'rate10':
      return base + (p.rateWarmupSeconds + p.rateSeconds) * 1000;
    case 'storm':
      // The clients' deadline, then closing them all.
      return base + p.stormTimeoutMs + 30000;
    default:
      return base;
  }
}

function cpuNote(m: Metrics): string {
  if (m.clientCpuPct === undefined) return '';
  const pct = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(0)}%` : '-');
  const other =
    m.otherCpuPct > 10 || m.stealCpuPct > 5
      ? `  WARNING: other load ${pct(m.otherCpuPct)}, steal ${pct(m.stealCpuPct)}`
      : '';
  return (
    `  [cpu client ${pct(m.clientCpuPct)} proxy ${pct(m.proxyCpuPct)} ` +
    `upstream ${pct(m.upstreamCpuPct)} other ${pct(m.otherCpuPct)}]${other}`
  );
}

function headline(scenario: ScenarioName, m: Metrics): string {
  return headlineOf(scenario, m) + cpuNote(m);
}

function headlineOf(scenario: ScenarioName, m: Metrics): string {
  switch (scenario) {
    case 'latency':
      return `p50 ${m.p50Us.toFixed(0)} µs  p99 ${m.p99Us.toFixed(0)} µs  max ${m.maxUs.toFixed(0)} µs`;
    case 'msgrate':
      return `${Math.round(m.roundTripsPerSec).toLocaleString('en-US')} round trips/s`;
    case 'bulk':
      return `${m.mbPerSec.toFixed(1)} MB/s`;
    case 'connect':
    case 'connect-distinct':
      return (
        `${m.perSec.toFixed(0)}/s  p50 ${m.handshakeP50Ms.toFixed(2)} ms  p99 ` +
        `${m.handshakeP99Ms.toFixed(2)} ms  proxy CPU ${us(m.proxyCpuUsPerHandshake)}/handshake ` +
        `(upstream ${us(m.upstreamCpuUsPerHandshake)})`
      );
    case 'rate5':
    case 'rate10':
      return (
        `${f(m.roundTripsPerSec, 0)} round trips/s of ${f(m.targetPerSec, 0)}  p50 ` +
        `${f(m.latencyP50Ms, 2)} ms  p99 ${f(m.latencyP99Ms, 2)} ms  proxy CPU ${us(m.proxyCpuUsPerRoundTrip)}/round trip ` +
        `(upstream ${us(m.upstreamCpuUsPerRoundTrip)})`
      );
    case 'storm':
      return (
        `${m.echoed}/${m.clients} echoed, last after ${f(m.stormSeconds, 2)} s ` +
        `(p50 ${f(m.echoP50Seconds, 2)} s), ${m.failures} failed; listen overflows ` +
        `${m.kernelListenOverflows}, SYN retransmits ${m.kernelTCPSynRetrans}; accept queue max ` +
        `${m.listenerAcceptQueueMax}/${m.listenerBacklog}; proxy CPU ${us(m.proxyCpuUsPerClient)}/client`
      );
    case 'idle': {
      const steps = Array.from(
        { length: m.steps },
        (_, k) => `${f(m[`step${k + 1}KibPerConn`], 1)} up to ${m[`step${k + 1}Connections`]}`,
      );
      return (
        `${f(m.kibPerConn, 2)} KiB/conn (RSS ${m.rssBeforeKiB} → ${m.rssAfterKiB} KiB for ` +
        `${m.connections} connections; at rest ${f(m.rssRestMiB, 1)} MiB; KiB/conn by step: ` +
        `${steps.join(', ')})`
      );
    }
  }
}

/**
 * A number for a headline; "-" when not measured (direct has no upstream; NaN arrives as null
 * over the IPC channel).
 */
function f(v: number | null | undefined, digits: number): string {
  return typeof v === 'number' && Number.isFinite(v)
    ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '-';
}

/** CPU time in µs for a headline. */
function us(v: number | null | undefined): string {
  const text = f(v, 0);
  return text === '-' ? text : `${text} µs`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  const opts = parseOptions(process.argv.slice(2));
  if (opts.render !== undefined) {
    // Re-render the docs from a saved result (e.g. after changing the report's layout).
    const saved = JSON.parse(readFileSync(resolve(opts.render), 'utf8')) as Report & {
      error: string | null;
    };
    if (saved.error) throw new Error(`${opts.render} is a failed run: ${saved.error}`);
    writeDocs(ROOT, saved);
    say(`wrote docs/benchmarks.md, docs/benchmarks.svg and README's summary from ${opts.render}`);
    return 0;
  }
  const command = `npm run bench${opts.args.length > 0 ? ` -- ${opts.args.join(' ')}` : ''}`;
  const params: ScenarioParams = { ...(opts.quick ? QUICK : FULL) };
  // Quick: every scenario on every target once. Full: about 25 minutes for 3 runs, so an hour
  // leaves room for storms that run into their 60 s deadline and for a busy machine.
  const watchdogMs = opts.quick ? 6 * 60000 : 60 * 60000;
  const watchdog = setTimeout(
    () => rejectFatal(new Error(`the whole bench exceeded its ${watchdogMs / 60000} min budget`)),
    watchdogMs,
  );
  watchdog.unref();

  if (opts.idleConnections !== undefined) params.idleConnections = opts.idleConnections;
  // Open files: a proxied idle connection costs the proxy two descriptors.
  const nofile = openFileLimit();
  let idleNote: string | undefined;
  const idleMax = Math.floor((nofile - 200) / 2 / 100) * 100;
  if (params.idleConnections > idleMax) {
    idleNote =
      `This machine caps open files at ${nofile} per process (\`ulimit -n\` could not be ` +
      `raised), and a proxy holds two descriptors per connection, so the idle scenario used ` +
      `${idleMax.toLocaleString('en-US')} connections instead of ` +
      `${params.idleConnections.toLocaleString('en-US')}.`;
    params.idleConnections = idleMax;
  }
  // The storm is bounded the same way: the proxy holds two descriptors per client.
  let stormNote: string | undefined;
  if (opts.stormPerAddress !== undefined) params.stormClientsPerAddress = opts.stormPerAddress;
  if (opts.stormClients !== undefined) params.stormClients = opts.stormClients;
  if (params.stormClients > idleMax) {
    stormNote =
      `The storm used ${idleMax.toLocaleString('en-US')} clients instead of ` +
      `${params.stormClients.toLocaleString('en-US')}: the open-file limit is ${nofile} ` +
      `and a proxy holds two descriptors per client.`;
    params.stormClients = idleMax;
  }

  const cpuList = allowedCpus();
  const pinned = cpuList.length >= 2;
  const clientCpu = pinned ? cpuList[0] : undefined;
  const serverCpu = pinned ? cpuList[1] : undefined;
  const pinning = pinned
    ? `load client pinned to CPU ${clientCpu}; echo upstream and proxy under test (nginx or ` +
      `Portico with its echo child) pinned together to CPU ${serverCpu} (taskset)`
    : `NOT pinned: only ${cpuList.length} CPU available, client and servers share it`;

  say(`Portico WebSocket bench — ${command}`);
  say(
    `targets: ${opts.targets.join(', ')}; scenarios: ${opts.scenarios.join(', ')}; runs: ${opts.runs}`,
  );
  say(`pinning: ${pinning}`);
  say(`open-file limit ${nofile}; idle scenario: ${params.idleConnections} connections`);
  say(`storm: ${params.stormClients} clients, ${params.stormClientsPerAddress} per source address`);
  if (idleNote) say(`note: ${idleNote}`);
  if (stormNote) say(`note: ${stormNote}`);

  if (opts.targets.includes('nginx')) ensureNginx();
  if (opts.targets.includes('portico')) buildPortico();

  const tmp = mkdtempSync(join(tmpdir(), 'portico-bench-'));
  const servers = new ServerSet(tmp, serverCpu === undefined ? undefined : String(serverCpu));
  let client: LoadClient | undefined;
  let interrupted = false;
  servers.setExitHandler((server, detail) =>
    rejectFatal(
      new Error(`${server.name} ${detail}; last output:\n${server.tail.join('\n') || '(none)'}`),
    ),
  );
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) {
      servers.killAllSync();
      process.exit(130);
    }
    interrupted = true;
    rejectFatal(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', () => {
    client?.stop();
    servers.killAllSync();
  });

  const records: RunRecord[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const cpuProfDir = opts.cpuProf ? join(resultsDir, `${stamp}-portico-cpuprof`) : undefined;
  const machine = {
    cpuModel: cpuModel(),
    cores: cpus().length,
    ramGiB: totalmem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    nginx: opts.targets.includes('nginx') ? nginxVersion() : 'n/a',
    ws: (
      JSON.parse(readFileSync(join(ROOT, 'node_modules/ws/package.json'), 'utf8')) as {
        version: string;
      }
    ).version,
    pinning,
    portico: opts.targets.includes('portico') ? porticoRevision() : 'n/a',
    openFileLimit: nofile,
  };
  const report = (): Report => ({
    date: new Date(started).toISOString(),
    command,
    quick: opts.quick,
    warmup: opts.warmup,
    runs: opts.runs,
    targets: opts.targets,
    scenarios: opts.scenarios,
    idleConnections: params.idleConnections,
    idleNote,
    stormNote,
    params,
    machine,
    records,
    medians: medians(records),
    porticoLog: servers
      .list()
      .filter((s) => s.name.startsWith('portico'))
      .flatMap((s) => s.linesSinceMark.map((line) => `${s.name}: ${line}`)),
  });

  let failure: Error | undefined;
  try {
    // Pin the harness itself next to the client, away from the servers.
    if (clientCpu !== undefined)
      execFileSync('taskset', ['-a', '-p', '-c', String(clientCpu), String(process.pid)], {
        stdio: 'ignore',
      });
    const launcher = new Launcher(servers, tmp, nofile);
    const endpoints = new Map<TargetName, TargetEndpoint>();
    let porticoPid: number | undefined;
    if (opts.targets.some((t) => t !== 'portico')) {
      const echo = await launcher.echo('echo');
      say(`echo upstream: pid ${echo.server.pid}, port ${echo.port}`);
      endpoints.set('direct', launcher.direct(echo).endpoint);
      if (opts.targets.includes('nginx')) {
        const nginx = await launcher.nginx('nginx', echo);
        say(`nginx: master pid ${nginx.servers[0].pid}, worker pid ${nginx.endpoint.proxyPid}`);
        endpoints.set('nginx', nginx.endpoint);
      }
      if (opts.targets.includes('splice')) {
        const splice = await launcher.splice('splice', echo);
        say(`splice: pid ${splice.endpoint.proxyPid}`);
        endpoints.set('splice', splice.endpoint);
      }
    }
    if (opts.targets.includes('portico')) {
      const portico = await launcher.portico('portico', cpuProfDir);
      porticoPid = portico.endpoint.proxyPid;
      say(`portico: pid ${porticoPid}, echo child pid ${portico.endpoint.upstreamPid ?? '?'}`);
      endpoints.set('portico', portico.endpoint);
    }

    client = LoadClient.start(clientCpu);
    for (const target of opts.targets) {
      const endpoint = endpoints.get(target) as TargetEndpoint;
      await guard(
        withTimeout(client.run('preflight', endpoint, params), 30000, `preflight via ${target}`),
      ).catch((err: Error) => {
        throw new Error(`${target} does not echo: ${err.message}`);
      });
    }
    say('preflight: every target echoes');
    for (const s of servers.list()) s.linesSinceMark.length = 0;
    const quiet = new QuietGate(opts.quick ? 20000 : 300000, () => {
      const pids = [process.pid, ...(client?.pid ? [client.pid] : [])];
      for (const srv of servers.list()) pids.push(srv.pid, ...descendants(srv.pid));
      return pids;
    });

    /** A target's long-running endpoint, with Portico's echo child as it is now. */
    const sharedEndpoint = (target: TargetName): TargetEndpoint => {
      const endpoint = { ...(endpoints.get(target) as TargetEndpoint) };
      if (target === 'portico' && porticoPid !== undefined) {
        const echoPid = porticoEchoPid(porticoPid);
        if (echoPid !== endpoint.upstreamPid) {
          say(`warning: Portico's echo child is now pid ${echoPid} (was ${endpoint.upstreamPid})`);
          endpoint.upstreamPort = echoPid === undefined ? undefined : listeningPort(echoPid);
        }
        endpoint.upstreamPid = echoPid;
      }
      return endpoint;
    };

    /** Every port of the shared servers: what a storm waits to see quiet. */
    const serverPorts = (): number[] => {
      const ports = new Set<number>();
      for (const e of endpoints.values()) {
        ports.add(urlPort(e.url));
        if (e.upstreamPort !== undefined) ports.add(e.upstreamPort);
      }
      return [...ports];
    };

    if (opts.warmup) {
      const t0 = Date.now();
      const warm = warmupParams(params);
      for (const scenario of opts.scenarios.filter((s) => s !== 'idle')) {
        for (const target of opts.targets) {
          const endpoint = sharedEndpoint(target);
          if (scenario === 'storm') await waitForSocketsGone(serverPorts(), `storm via ${target}`);
          await guard(
            withTimeout(
              client.run(scenario, endpoint, warm),
              scenarioBudgetMs(scenario, warm),
              `warm-up ${scenario} via ${target}`,
            ),
          );
        }
      }
      say(`warm-up round (not recorded): ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }

    for (let run = 1; run <= opts.runs; run++) {
      // Rotate the target order between runs so that no target always goes first.
      const order = opts.targets.map((_, i) => opts.targets[(i + run - 1) % opts.targets.length]);
      for (const scenario of opts.scenarios) {
        for (const target of order) {
          // idle runs on fresh processes, stopped right after; everything else on the shared ones.
          const fresh =
            scenario === 'idle' ? await launcher.fresh(target, `idle-run${run}`) : undefined;
          const endpoint = fresh?.endpoint ?? sharedEndpoint(target);
          // Every storm meets servers with no connection of an earlier scenario left.
          if (scenario === 'storm') await waitForSocketsGone(serverPorts(), `storm via ${target}`);
          await quiet.wait(`${scenario} via ${target}`);
          for (const pid of [endpoint.proxyPid, endpoint.upstreamPid])
            if (pid !== undefined && !alive(pid))
              throw new Error(`${target}: process ${pid} under test died before ${scenario}`);
          const t0 = Date.now();
          const { metrics, notes } = await guard(
            withTimeout(
              client.run(scenario, endpoint, params),
              scenarioBudgetMs(scenario, params),
              `${scenario} via ${target}`,
            ),
          );
          if (fresh) await servers.stop(fresh.servers);
          records.push({ run, scenario, target, metrics, ...(notes.length > 0 ? { notes } : {}) });
          say(
            `[run ${run}/${opts.runs}] ${scenario.padEnd(8)} ${target.padEnd(8)} ` +
              `${headline(scenario, metrics)}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
          for (const note of notes) say(`    ${note}`);
        }
      }
    }
  } catch (err) {
    failure = err as Error;
  }

  client?.stop();
  const porticoServer = servers.list().find((s) => s.name === 'portico');
  const final = report();
  const jsonFile = join(resultsDir, `${stamp}.json`);
  writeFileSync(
    jsonFile,
    JSON.stringify({ ...final, error: failure?.message ?? null }, null, 2) + '\n',
  );
  if (porticoServer && existsSync(porticoServer.logFile))
    copyFileSync(porticoServer.logFile, join(resultsDir, `${stamp}-portico.log`));
  await servers.stopAll(opts.cpuProf ? 20000 : 5000);
  if (cpuProfDir) say(`Portico CPU profile (open in Chrome DevTools): ${cpuProfDir}`);
  if (!opts.keepTmp) rmSync(tmp, { recursive: true, force: true });
  else say(`kept ${tmp}`);

  if (failure) {
    say('');
    say(`BENCH FAILED after ${((Date.now() - started) / 1000).toFixed(0)} s: ${failure.message}`);
    say(`partial results: ${jsonFile}`);
    return interrupted ? 130 : 1;
  }

  say('');
  say(machineLines(final));
  say('');
  say(resultsTable(final));
  for (const table of [
    goalsTable(final),
    goalsTable(final, EARLIER_GOALS, 'issue #3'),
    opts.scenarios.includes('storm') ? stormTable(final) : '',
    opts.scenarios.includes('idle') ? idleStepsTable(final) : '',
  ]) {
    if (table === '') continue;
    say('');
    say(table);
  }
  if (final.porticoLog.length > 0) {
    say('');
    say(
      `Portico logged ${final.porticoLog.length} line(s) at warn level or above during the bench:`,
    );
    for (const line of final.porticoLog.slice(0, 10)) say(`  ${line}`);
  }
  say('');
  say(`results: ${jsonFile}`);
  if (opts.docs) {
    writeDocs(ROOT, final);
    say("wrote docs/benchmarks.md, docs/benchmarks.svg and README's summary");
  } else {
    say('docs/benchmarks.md not updated (quick or partial run; pass --docs to force)');
  }
  say(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(`BENCH FAILED: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
