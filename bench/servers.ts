import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync, WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/**
 * Every server the harness starts goes through here, so that all of them (and their children,
 * e.g. the echo plugin Portico spawns) are stopped on every exit path.
 */

export interface Server {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  /** Last lines of stdout/stderr, for error messages. */
  tail: string[];
  /** Output since the harness cleared it after the preflight (Portico: warnings or worse). */
  linesSinceMark: string[];
  exited: boolean;
  /** Stopped on purpose: its exit is not a failure. */
  stopping: boolean;
}

export class ServerSet {
  private readonly servers: Server[] = [];
  private stopping = false;
  private onUnexpectedExit: (server: Server, detail: string) => void = () => undefined;

  public constructor(
    private readonly logDir: string,
    /** CPU list for taskset, or undefined to run unpinned. */
    private readonly cpus: string | undefined,
  ) {}

  public setExitHandler(handler: (server: Server, detail: string) => void): void {
    this.onUnexpectedExit = handler;
  }

  public list(): readonly Server[] {
    return this.servers;
  }

  public start(name: string, command: string, args: string[], options: SpawnOptions): Server {
    const [cmd, argv] = this.cpus
      ? ['taskset', ['-c', this.cpus, command, ...args]]
      : [command, args];
    const proc = spawn(cmd, argv, {
      ...options,
      detached: true, // own process group: killed as a group, never by a terminal's Ctrl-C first
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (proc.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    const logFile = join(this.logDir, `${name}.log`);
    const log: WriteStream = createWriteStream(logFile);
    const server: Server = {
      name,
      proc,
      pid: proc.pid,
      logFile,
      tail: [],
      linesSinceMark: [],
      exited: false,
      stopping: false,
    };
    const collect = (chunk: Buffer): void => {
      log.write(chunk);
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        server.tail.push(line);
        if (server.tail.length > 40) server.tail.shift();
        if (server.linesSinceMark.length < 1000) server.linesSinceMark.push(line);
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    proc.on('error', (err) => {
      server.exited = true;
      if (!this.stopping && !server.stopping)
        this.onUnexpectedExit(server, `failed to start: ${err.message}`);
    });
    proc.on('exit', (code, signal) => {
      server.exited = true;
      log.end();
      if (!this.stopping && !server.stopping)
        this.onUnexpectedExit(server, `exited unexpectedly (code ${code}, signal ${signal})`);
    });
    this.servers.push(server);
    return server;
  }

  /** Stops every server (see `stop`). */
  public async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    await this.stop(this.servers, graceMs);
  }

  /**
   * SIGTERM to each server's process group; children a server should stop itself (Portico's
   * plugins, in their own process groups) get SIGTERM only if still there when it has exited.
   * Whatever is left after `graceMs` gets SIGKILL.
   */
  public async stop(servers: readonly Server[], graceMs = 5000): Promise<void> {
    const pids = new Set<number>();
    for (const server of servers) {
      server.stopping = true;
      for (const pid of [server.pid, ...descendants(server.pid)]) pids.add(pid);
      signalGroup(server.pid, 'SIGTERM');
    }
    const deadline = Date.now() + graceMs;
    const leaders = servers.map((srv) => srv.pid);
    while (Date.now() < deadline && leaders.some(alive)) await sleep(50);
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGTERM');
    const last = Date.now() + 2000;
    while (Date.now() < last && [...pids].some(alive)) await sleep(50);
    for (const server of servers) signalGroup(server.pid, 'SIGKILL');
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
  }

  /** Last resort from a synchronous `exit` handler. */
  public killAllSync(): void {
    this.stopping = true;
    for (const server of this.servers) {
      for (const pid of descendants(server.pid)) signal(pid, 'SIGKILL');
      signalGroup(server.pid, 'SIGKILL');
    }
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  signal(-pid, sig);
}

/** Alive and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function children(pid: number): number[] {
  const out: number[] = [];
  const taskDir = `/proc/${pid}/task`;
  if (!existsSync(taskDir)) return out;
  for (const tid of readdirSync(taskDir)) {
    try {
      const text = readFileSync(`${taskDir}/${tid}/children`, 'utf8').trim();
      if (text !== '') out.push(...text.split(/\s+/).map(Number));
    } catch {
      // thread ended
    }
  }
  return out;
}

export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = children(pid);
  while (queue.length > 0) {
    const next = queue.shift() as number;
    out.push(next);
    queue.push(...children(next));
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves with the first stdout line matching `pattern`, or rejects on exit/timeout. */
export function waitForLine(server: Server, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(
      () => finish(new Error(`${server.name}: no ready line within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      const hit = lines.find((l) => pattern.test(l));
      if (hit !== undefined) finish(undefined, hit);
    };
    const onExit = (): void =>
      finish(new Error(`${server.name} exited before it was ready:\n${server.tail.join('\n')}`));
    const finish = (err: Error | undefined, line?: string): void => {
      clearTimeout(timer);
      server.proc.stdout?.off('data', onData);
      server.proc.off('exit', onExit);
      if (err) reject(err);
      else resolve(line as string);
    };
    server.proc.stdout?.on('data', onData);
    server.proc.once('exit', onExit);
  });
}

/** Polls `probe` until it resolves true, the server exits, or the timeout passes. */
export async function waitUntil(
  server: Server,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exited)
      throw new Error(
        `${server.name} exited while waiting for ${what}:\n${server.tail.join('\n')}`,
      );
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(
    `${server.name}: ${what} not reached within ${timeoutMs} ms:\n${server.tail.join('\n')}`,
  );
}
