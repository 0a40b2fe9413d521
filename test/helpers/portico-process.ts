import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { mintToken } from '../../scripts/lib/token-minter';
import { http } from './http-client';
import { suiteHasEnded, track } from './leftovers';
import { TEST_JWT_SECRET } from './test-app';
import { waitFor } from './wait';

const ROOT = resolve(__dirname, '../..');

export interface PorticoProcess {
  readonly pid: number;
  readonly port: number;
  readonly baseUrl: string;
  readonly wsUrl: string;
  token(): string;
  adminToken(): string;
  /** Everything the host wrote to stdout and stderr so far (when started with `capture`). */
  output(): string;
  /** Resident set size of the host process (not its plugins), in bytes. */
  rss(): number;
  stop(): Promise<void>;
  /** SIGKILL, as a crash or an OOM kill would: no shutdown hooks run. */
  kill(): Promise<void>;
}

/** How long `stop` waits after SIGTERM before it kills the host. */
const STOP_GRACE_MS = 15_000;

/** A TCP port nothing listens on right now (on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** How `startPorticoProcess` runs the host. */
export interface PorticoProcessOptions {
  /** Variables added to (or replacing) the host's environment. */
  readonly env?: Record<string, string>;
  /** Keep the host's stdout and stderr for `output()` instead of discarding them. */
  readonly capture?: boolean;
  /** Use this DATA_DIR and keep it (default: a fresh one removed by `stop`). */
  readonly dataDir?: string;
}

/**
 * Runs the host in its own process (src/main.ts through ts-node), so its memory can be measured
 * apart from the test's clients. Resolves once /readyz answers 200; a host that exits or never
 * gets ready is stopped before the error is thrown.
 */
export async function startPorticoProcess(
  pluginsDir: string,
  options: PorticoProcessOptions = {},
): Promise<PorticoProcess> {
  if (suiteHasEnded()) throw new Error('the suite has ended: no new host');
  const port = await freePort();
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'portico-proc-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [require.resolve('ts-node/dist/bin.js'), '--transpile-only', 'src/main.ts'],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        HOST: '127.0.0.1',
        PLUGINS_DIR: pluginsDir,
        DATA_DIR: dataDir,
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: [
        'ignore',
        options.capture === true ? 'pipe' : 'ignore',
        options.capture === true ? 'pipe' : 'inherit',
      ],
    },
  );
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const hasExited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const removeDataDir = (): void => {
    if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  /** SIGTERM (the host stops its plugins), SIGKILL if it has not exited after the grace. */
  const terminate = async (): Promise<'exited' | 'killed'> => {
    if (hasExited()) return 'exited';
    let outcome: 'exited' | 'killed' = 'exited';
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      outcome = 'killed';
      child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
    return outcome;
  };
  const pid = child.pid;
  if (pid === undefined) {
    removeDataDir();
    throw new Error('could not start portico');
  }
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    const outcome = await waitFor(
      async () => {
        if (hasExited()) return 'exited';
        return (await http(baseUrl, 'GET', '/readyz')).status === 200 && 'ready';
      },
      30_000,
      'portico readiness',
    );
    if (outcome === 'exited') {
      throw new Error(`portico exited before it was ready (${child.exitCode ?? child.signalCode})`);
    }
    // A test that timed out runs on after its suite ended: a host started then is not kept.
    if (suiteHasEnded()) throw new Error('the suite ended while this host was starting');
  } catch (err) {
    // A host that never got ready must not outlive the test that started it.
    await terminate();
    removeDataDir();
    throw err;
  }
  let untrack = (): void => undefined;
  const host: PorticoProcess = {
    pid,
    port,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}`,
    token: () => mintToken(TEST_JWT_SECRET, { sub: 'bench', roles: [] }),
    adminToken: () => mintToken(TEST_JWT_SECRET, { sub: 'root', roles: ['admin'] }),
    output: () => Buffer.concat(chunks).toString('utf8'),
    rss: () => {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kib = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      return Number(kib) * 1024;
    },
    stop: async () => {
      untrack();
      const outcome = await terminate();
      removeDataDir();
      if (outcome === 'killed') {
        throw new Error(`portico did not exit within ${STOP_GRACE_MS} ms of SIGTERM`);
      }
    },
    kill: async () => {
      untrack();
      child.kill('SIGKILL');
      await exited;
    },
  };
  untrack = track(() => host.stop());
  return host;
}
