import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { FakeClock } from '../helpers/fake-clock';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { TEST_JWT_SECRET } from '../helpers/test-app';
import { isGone, waitFor } from '../helpers/wait';
import {
  DATA_DIR_LOCK_FILE,
  DATA_DIR_LOCKED_EXIT_CODE,
  FileDataDirLock,
} from '../../src/plugins/process/data-dir-lock';
import type { HostProcess } from '../../src/plugins/process/host-process';

const ROOT = resolve(__dirname, '../..');

interface Pids {
  pid: number;
  grandchild: number;
}

interface Refusal {
  readonly code: number | null;
  readonly output: string;
}

/** Children of `runToExit` still running: killed after each test whatever happened. */
const running = new Set<ChildProcess>();

/**
 * Starts Portico (src/main.ts) on `dataDir` and waits for it to exit by itself, as a host
 * refused its DATA_DIR does; killed after `timeoutMs` (then the test fails on the exit code).
 */
async function runToExit(
  pluginsDir: string,
  dataDir: string,
  timeoutMs = 60_000,
): Promise<Refusal> {
  const child = spawn(
    process.execPath,
    [require.resolve('ts-node/dist/bin.js'), '--transpile-only', 'src/main.ts'],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: '0',
        HOST: '127.0.0.1',
        PLUGINS_DIR: pluginsDir,
        DATA_DIR: dataDir,
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  timer.unref();
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  clearTimeout(timer);
  running.delete(child);
  return { code, output: Buffer.concat(chunks).toString('utf8') };
}

const occurrences = (text: string, part: string): number => text.split(part).length - 1;

/** The lock file's holder, as the next host will read it. */
const lockHolder = (dataDir: string): HostProcess =>
  (JSON.parse(readFileSync(join(dataDir, DATA_DIR_LOCK_FILE), 'utf8')) as { holder: HostProcess })
    .holder;

const pidsOf = async (host: PorticoProcess): Promise<Pids> =>
  waitFor(
    async () => {
      const res = await http(host.baseUrl, 'GET', '/api/plugins/grandchild/rpc/pids', {
        token: host.token(),
      });
      return res.status === 200 ? (res.json as Pids) : undefined;
    },
    15_000,
    'grandchild plugin running',
  );

/**
 * One DATA_DIR, one host: the child ledger in it lists the plugins of the host using it, and a
 * second host would end them at its start. Real Portico processes on one DATA_DIR.
 */
describe('two hosts on one DATA_DIR', () => {
  let dataDir: string;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let hosts: PorticoProcess[] = [];
  /** Plugin processes seen, killed at the end whatever happened. */
  const seen = new Set<number>();

  const start = async (): Promise<PorticoProcess> => {
    const host = await startPorticoProcess(plugins.dir, { dataDir, capture: true });
    hosts.push(host);
    return host;
  };
  const pluginPids = async (host: PorticoProcess): Promise<Pids> => {
    const pids = await pidsOf(host);
    seen.add(pids.pid).add(pids.grandchild);
    return pids;
  };

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-lock-e2e-'));
    plugins = pluginsDirWith(['grandchild']);
  });

  afterEach(async () => {
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(hosts.map((h) => h.stop()));
    hosts = [];
    for (const pid of seen) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    seen.clear();
    plugins.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses the second host with a clear error, and the first one’s plugins keep running', async () => {
    const first = await start();
    const before = await pluginPids(first);

    const second = await runToExit(plugins.dir, dataDir);
    expect(second.code).toBe(DATA_DIR_LOCKED_EXIT_CODE);
    expect(second.output).toContain(`DATA_DIR ${dataDir} is in use by another Portico`);
    expect(second.output).toContain(`pid ${first.pid} on host`);
    expect(second.output).toContain(`Stop that host (pid ${first.pid}) first`);
    expect(occurrences(second.output, 'is in use by')).toBe(1); // logged once

    // Nothing of the first host was touched: same plugin processes, still served.
    expect(isGone(before.pid)).toBe(false);
    expect(isGone(before.grandchild)).toBe(false);
    expect(await pluginPids(first)).toEqual(before);
    expect(lockHolder(dataDir).pid).toBe(first.pid);
  }, 120_000);

  it('lets a host start once the first has stopped', async () => {
    const first = await start();
    const before = await pluginPids(first);
    await first.stop();
    hosts = [];
    expect(() => readFileSync(join(dataDir, DATA_DIR_LOCK_FILE))).toThrow(/ENOENT/);

    const next = await start();
    const after = await pluginPids(next);
    expect(after.pid).not.toBe(before.pid);
    expect(lockHolder(dataDir).pid).toBe(next.pid);
    expect(next.output()).not.toContain('data_dir_lock_taken_over');
  }, 120_000);
});

/**
 * A holder on another machine (another pod on a shared volume): its pid means nothing here,
 * so its heartbeat decides. The holder is a FileDataDirLock in this test process that says it
 * runs elsewhere, on a fake clock, so its heartbeat is exactly as old as the test wants.
 */
describe('a DATA_DIR held by a host on another machine', () => {
  let dataDir: string;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let host: PorticoProcess | undefined;
  let holder: FileDataDirLock | undefined;

  const elsewhere: HostProcess = {
    hostname: 'portico-0',
    bootId: '00000000-0000-4000-8000-000000000000',
    pidNamespace: 'pid:[4026532999]',
    pid: 1,
    startTime: '42',
    instance: 'a'.repeat(32),
  };
  /** Takes the lock as `elsewhere`, its last heartbeat `age` ms ago; it never beats again. */
  const heldElsewhere = (age: number): void => {
    const clock = new FakeClock();
    clock.advance(Date.now() - age);
    holder = new FileDataDirLock(dataDir, elsewhere, clock, () => false);
    holder.acquire();
  };

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-lock-remote-'));
    plugins = pluginsDirWith(['bundled:echo']);
  });

  afterEach(async () => {
    for (const child of running) child.kill('SIGKILL');
    await host?.stop();
    host = undefined;
    holder?.release();
    holder = undefined;
    plugins.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses to start while its heartbeat is fresh, saying when the lock expires', async () => {
    heldElsewhere(1_000);
    const refused = await runToExit(plugins.dir, dataDir);
    expect(refused.code).toBe(DATA_DIR_LOCKED_EXIT_CODE);
    expect(refused.output).toContain(`DATA_DIR ${dataDir} is in use`);
    expect(refused.output).toContain('pid 1 on host "portico-0"');
    expect(refused.output).toMatch(/lock expires 30 s after its last heartbeat \(at [0-9T:.-]+Z\)/);
    expect(lockHolder(dataDir)).toEqual(elsewhere);
  }, 120_000);

  it('takes the lock over once the heartbeat is older than the lease', async () => {
    heldElsewhere(60_000);
    host = await startPorticoProcess(plugins.dir, { dataDir, capture: true });
    expect(lockHolder(dataDir).pid).toBe(host.pid);
    expect(host.output()).toContain('data_dir_lock_taken_over');
    expect(host.output()).toContain('"reason":"expired"');
  }, 120_000);
});
