import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { parseStat } from '../../src/plugins/process/proc-table';
import { http } from '../helpers/http-client';
import { freePort } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';

/**
 * Portico as a container runs it (Dockerfile: `ENTRYPOINT ["tini", "--"]`): PID 1 of a PID
 * namespace of its own, under tini, with a plugin that leaves a setsid grandchild running and a
 * double-forked orphan that exits. No container engine runs in CI, so `unshare --pid --fork
 * --mount-proc` makes the namespace; the test looks at it from outside, through the host's
 * /proc. A control shows what tini is there for: with Node itself as PID 1 the orphan stays a
 * zombie.
 */

const ROOT = resolve(__dirname, '../..');
const PLUGINS_DIR = join(ROOT, 'test/fixtures/pid1-plugins');
const PLUGIN = 'pid1';
const TS_NODE = require.resolve('ts-node/dist/bin.js');
/** How long a namespace may take to end after SIGTERM (the plugin stop alone allows 7 s). */
const EXIT_WITHIN_MS = 30_000;

/** Why this machine cannot run the suite, or undefined. Only a missing tool or privilege skips. */
function whyNotRunnable(): string | undefined {
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], {
    encoding: 'utf8',
  });
  if ((probe.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
    return 'unshare (util-linux) is not installed';
  if (probe.status !== 0 && /not permitted|permission denied/i.test(probe.stderr))
    return `unshare may not create a PID namespace here (${probe.stderr.trim()}); run as root`;
  const tini = spawnSync('tini', ['--version'], { encoding: 'utf8' });
  if ((tini.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
    return 'tini is not installed (Debian package tini)';
  return undefined;
}

const SKIP = whyNotRunnable();
if (SKIP !== undefined) {
  console.warn(`\n\n*** SKIPPED: the PID-1 suite cannot run: ${SKIP} ***\n\n`);
}
const describeIfRunnable = SKIP === undefined ? describe : describe.skip;

/** One process of the namespace, seen from the host. */
interface NsProcess {
  readonly hostPid: number;
  /** Its pid inside the namespace (the last NSpid field). */
  readonly nsPid: number;
  /** Its parent's pid inside the namespace (0: its parent is outside, i.e. it is PID 1). */
  readonly nsPpid: number;
  /** Its session id inside the namespace. */
  readonly nsSid: number;
  readonly zombie: boolean;
  readonly startTime: string;
  readonly cmdline: string;
}

/** The namespace's pid-namespace link (`pid:[inode]`), from any of its processes. */
const nsOf = (hostPid: number): string => readlinkSync(`/proc/${hostPid}/ns/pid`);

/** The last field of a /proc/<pid>/status line (`NSpid:\t4711\t3`): the innermost namespace's. */
function innermost(status: string, field: string): number {
  const values = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/);
  return Number(values?.[values.length - 1]);
}

/** Every process of the namespace `ns`, from the host's /proc. */
function processesIn(ns: string): NsProcess[] {
  const found: (Omit<NsProcess, 'nsPpid'> & { hostPpid: number })[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) !== ns) continue;
      const stat = parseStat(Number(name), readFileSync(`/proc/${name}/stat`, 'utf8'));
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      if (stat === undefined) continue;
      found.push({
        hostPid: stat.pid,
        hostPpid: stat.ppid,
        // stat's ids are as the reader's /proc numbers them (the host's); NS* are the namespace's.
        nsPid: innermost(status, 'NSpid'),
        nsSid: innermost(status, 'NSsid'),
        zombie: stat.zombie,
        startTime: stat.startTime,
        cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' '),
      });
    } catch {
      // gone meanwhile
    }
  }
  const nsPidOf = new Map(found.map((p) => [p.hostPid, p.nsPid]));
  return found.map(({ hostPpid, ...p }) => ({ ...p, nsPpid: nsPidOf.get(hostPpid) ?? 0 }));
}

/** True while the host pid still names the process that had this start time. */
function stillRuns(p: NsProcess): boolean {
  try {
    return (
      parseStat(p.hostPid, readFileSync(`/proc/${p.hostPid}/stat`, 'utf8'))?.startTime ===
      p.startTime
    );
  } catch {
    return false;
  }
}

/** The one child of `parent` (unshare forks once: the namespace's PID 1). */
function childOf(parent: number): number {
  const children = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return parseStat(Number(name), readFileSync(`/proc/${name}/stat`, 'utf8'))?.ppid === parent;
      } catch {
        return false; // gone meanwhile
      }
    });
  if (children.length !== 1) throw new Error(`${parent} has ${children.length} children, not 1`);
  return Number(children[0]);
}

/** What the fixture wrote to PLUGIN_DATA_DIR (pids as the namespace numbers them). */
function recorded(dataDir: string, file: string): Record<string, unknown> | undefined {
  const path = join(dataDir, 'plugins', PLUGIN, file);
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>)
    : undefined;
}

/** An unshare this suite started; whatever a test leaves running is killed after it. */
interface Launched {
  readonly unshare: ChildProcess;
  readonly dataDir: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Namespace extends Launched {
  readonly baseUrl: string;
  /** Host pid of the namespace's PID 1 (unshare's forked child). */
  readonly init: number;
  /** The namespace's `pid:[inode]` link. */
  readonly ns: string;
  /** What Portico (and tini) wrote to stdout and stderr so far. */
  output(): string;
}

const launched: Launched[] = [];

/**
 * Starts `command` (then Portico's entry point, src/main.ts through ts-node, in-process) as PID 1
 * of a new PID namespace, and waits until Portico is ready and the plugin has left its grandchild
 * and its orphan behind. `--kill-child`: if unshare is killed, so is PID 1, and with it the whole
 * namespace (the kernel SIGKILLs every process of a namespace whose PID 1 ends).
 */
async function startInNamespace(command: string[]): Promise<Namespace> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'portico-pid1-'));
  const unshare = spawn(
    'unshare',
    [
      '--pid',
      '--fork',
      '--mount-proc',
      '--kill-child',
      ...command,
      process.execPath,
      TS_NODE,
      '--transpile-only',
      'src/main.ts',
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        // As in the image (Dockerfile): production, so both keys are required.
        NODE_ENV: 'production',
        JWT_SECRET: randomBytes(32).toString('hex'),
        SECRETS_KEY: randomBytes(32).toString('base64'),
        HOST: '127.0.0.1',
        PORT: String(port),
        PLUGINS_DIR,
        DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const chunks: Buffer[] = [];
  unshare.stdout?.on('data', (c: Buffer) => chunks.push(c));
  unshare.stderr?.on('data', (c: Buffer) => chunks.push(c));
  let ended = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      ended = true;
      r({ code, signal });
    };
    unshare.once('exit', end);
    // No 'exit' follows a failed spawn.
    unshare.once('error', (err) => {
      chunks.push(Buffer.from(`spawn failed: ${err.message}`));
      end(null, null);
    });
  });
  launched.push({ unshare, dataDir, exited });
  const output = (): string => Buffer.concat(chunks).toString('utf8');
  const baseUrl = `http://127.0.0.1:${port}`;
  const outcome = await waitFor(
    async () => {
      if (ended) return 'exited';
      return (await http(baseUrl, 'GET', '/readyz')).status === 200 && 'ready';
    },
    60_000,
    'Portico ready in the namespace',
  );
  if (outcome === 'exited' || unshare.pid === undefined)
    throw new Error(`unshare exited before Portico was ready: ${output()}`);
  const pid = unshare.pid;
  const init = childOf(pid);
  const namespace: Namespace = { unshare, dataDir, exited, baseUrl, init, ns: nsOf(init), output };
  await waitFor(
    () =>
      recorded(dataDir, 'keeper.json') !== undefined &&
      recorded(dataDir, 'orphan.json') !== undefined,
    20_000,
    'the grandchild and the orphan of the plugin',
  );
  return namespace;
}

/** Ends with SIGTERM to the namespace's PID 1, as a container runtime stops a container. */
async function stopWithSigterm(
  n: Namespace,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  process.kill(n.init, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(
      () => rej(new Error(`the namespace did not end within ${EXIT_WITHIN_MS} ms of SIGTERM`)),
      EXIT_WITHIN_MS,
    );
  });
  try {
    return await Promise.race([n.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

afterEach(async () => {
  // Whatever a test left running: SIGKILL to unshare takes PID 1 and so the namespace with it.
  for (const n of launched.splice(0)) {
    n.unshare.kill('SIGKILL'); // a no-op once it has exited
    await n.exited;
    rmSync(n.dataDir, { recursive: true, force: true });
  }
});

describeIfRunnable('Portico as PID 1 of a container (tini, PID namespace)', () => {
  jest.setTimeout(120_000);

  it('under tini: the orphan is reaped, and SIGTERM ends Portico, its plugin and the grandchild', async () => {
    const n = await startInNamespace(['tini', '--']);

    // The layout a container has: tini is PID 1, Portico its child.
    const before = processesIn(n.ns);
    const tini = before.find((p) => p.hostPid === n.init);
    const portico = before.find((p) => p.nsPpid === 1 && p.cmdline.includes('src/main.ts'));
    expect(tini?.nsPid).toBe(1);
    expect(tini?.cmdline).toMatch(/^tini -- /);
    expect(portico).toBeDefined();

    // The orphan was re-parented to PID 1 and has exited; tini reaps it: no zombie is left.
    const orphan = recorded(n.dataDir, 'orphan.json');
    expect(orphan?.ppid).toBe(1);
    await waitFor(
      () => !processesIn(n.ns).some((p) => p.nsPid === orphan?.pid),
      10_000,
      'PID 1 to reap the orphan',
    );
    expect(processesIn(n.ns).filter((p) => p.zombie)).toEqual([]);

    // The grandchild runs outside the plugin's process group and session, re-parented to PID 1.
    const keeperPid = recorded(n.dataDir, 'keeper.json')?.pid;
    const keeper = await waitFor(
      () => processesIn(n.ns).find((p) => p.nsPid === keeperPid && p.nsPpid === 1),
      10_000,
      'the grandchild re-parented to PID 1',
    );
    expect(keeper).toMatchObject({ nsSid: keeperPid, zombie: false });
    const running = processesIn(n.ns);
    const server = running.find(
      (p) => p.nsPpid === portico?.nsPid && p.cmdline.includes('server.js'),
    );
    expect(server).toBeDefined();
    expect(keeper.nsSid).not.toBe(server?.nsSid);

    // SIGTERM to PID 1, as `docker stop` or the kubelet sends it. tini passes it on to Portico,
    // which stops its plugin, and exits with Portico's status: NestJS re-raises the signal once
    // the shutdown is done, so 143 (128 + SIGTERM), not 137 (SIGKILL) or a crash's 1.
    expect(await stopWithSigterm(n)).toEqual({ code: 143, signal: null });

    // Nothing of the namespace is left ...
    expect(running.filter(stillRuns)).toEqual([]);
    expect(processesIn(n.ns)).toEqual([]);
    // ... which the kernel would guarantee anyway (a namespace ends with its PID 1, everything
    // in it SIGKILLed). So: Portico itself ended the grandchild, with a SIGTERM the grandchild
    // recorded (a SIGKILL cannot be caught), and logged it as an escaped process it killed.
    expect(recorded(n.dataDir, 'keeper-terminated.json')).toEqual({
      pid: keeperPid,
      signal: 'SIGTERM',
    });
    const events = n
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event?: string; plugin?: string; pids?: number[] });
    expect(events.find((e) => e.event === 'plugin_escapees_killed')).toMatchObject({
      plugin: PLUGIN,
      pids: expect.arrayContaining([keeperPid]) as number[],
    });
    expect(events.filter((e) => e.event === 'plugin_processes_survived')).toEqual([]);
  });

  it('control: with Node as PID 1 (no tini) the exited orphan stays a zombie', async () => {
    const n = await startInNamespace([]);
    const node = processesIn(n.ns).find((p) => p.hostPid === n.init);
    expect(node?.nsPid).toBe(1);
    expect(node?.cmdline).toContain('src/main.ts');

    const orphan = recorded(n.dataDir, 'orphan.json');
    expect(orphan?.ppid).toBe(1);
    const zombie = await waitFor(
      () => processesIn(n.ns).find((p) => p.nsPid === orphan?.pid && p.zombie),
      10_000,
      'the exited orphan as a zombie',
    );
    // Node reaps only the children it spawned. After a round trip through its event loop (which
    // has seen the SIGCHLD) the zombie is still there, a child of PID 1.
    expect((await http(n.baseUrl, 'GET', '/healthz')).status).toBe(200);
    expect(processesIn(n.ns).find((p) => p.nsPid === orphan?.pid)).toMatchObject({
      hostPid: zombie.hostPid,
      nsPpid: 1,
      zombie: true,
    });
  });
});
