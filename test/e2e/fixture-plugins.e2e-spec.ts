/**
 * Smoke test of the plugin servers used by the other tests (test/fixtures/plugins) and of the
 * bundled echo plugin: each one is run directly (`node server.js` in its folder), without Portico.
 * Every process is started in its own process group and killed with it, whatever happens.
 * (An e2e suite, not a unit test: it spawns real processes.)
 */
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import WebSocket, { RawData } from 'ws';

import { waitFor } from '../helpers/wait';

const FIXTURES = resolve(__dirname, '../fixtures/plugins');
const ECHO = resolve(__dirname, '../../plugins/echo');

interface Running {
  readonly child: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the port of the first `{"ready":true,"port":N}` line, rejects on exit. */
  readonly ready: Promise<number>;
}

const started: Running[] = [];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The TCP ports `pid` listens on: its socket inodes (/proc/<pid>/fd) matched against the
 * LISTEN rows (state 0A) of its network namespace's tables. Lets a test see a server listen
 * before (or without) its ready line.
 */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const rows = readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1);
    for (const row of rows) {
      // sl local_address rem_address st ... inode (10th column)
      const [, local, , state, , , , , , inode] = row.trim().split(/\s+/);
      if (state === '0A' && inode !== undefined && inodes.has(inode)) {
        ports.push(parseInt(local?.split(':')[1] ?? '', 16));
      }
    }
  }
  return ports;
}

/** Resolves with the first port `running` listens on, once it listens. */
function listening(running: Running): Promise<number> {
  return waitFor(
    () => listeningPorts(running.child.pid as number)[0],
    10_000,
    'the server to listen',
  );
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal);
  } catch {
    // already gone
  }
}

function run(folder: string, env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, ['server.js'], {
    cwd: folder,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: folder, ...env },
    detached: true, // own process group, so that cleanup can kill grandchildren too
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const ready = new Promise<number>((resolveReady, reject) => {
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        stdout.push(line);
        try {
          const parsed = JSON.parse(line) as { ready?: unknown; port?: unknown };
          if (parsed.ready === true && typeof parsed.port === 'number') resolveReady(parsed.port);
        } catch {
          // not JSON: plain output
        }
      }
    });
    // Not awaited: `exited` never rejects, and rejecting after the ready line is a no-op.
    void exited.then(({ code }) => reject(new Error(`exited with ${code} before ready`)));
  });
  ready.catch(() => undefined);
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const running = { child, stdout, stderr, exited, ready };
  started.push(running);
  return running;
}

function readPidFile(file: string): number | null {
  try {
    return Number(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function stop(running: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  killGroup(running.child, signal);
  await running.exited;
}

function connect(port: number, path = '/ws', protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { handshakeTimeout: 2000 });
  return new Promise((resolveOpen, reject) => {
    ws.once('open', () => resolveOpen(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolveMessage) =>
    ws.once('message', (data: RawData, isBinary: boolean) =>
      resolveMessage({ data: data as Buffer, isBinary }),
    ),
  );
}

async function roundTrip(ws: WebSocket, data: string | Buffer): Promise<void> {
  const reply = nextMessage(ws);
  ws.send(data);
  const { data: got, isBinary } = await reply;
  expect(isBinary).toBe(Buffer.isBuffer(data));
  expect(got.equals(Buffer.from(data))).toBe(true);
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolveClose) =>
    ws.once('close', (code: number, reason: Buffer) =>
      resolveClose({ code, reason: reason.toString() }),
    ),
  );
}

async function getJson(port: number, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

afterEach(async () => {
  for (const running of started.splice(0)) {
    if (running.child.exitCode === null && running.child.signalCode === null) {
      killGroup(running.child, 'SIGKILL');
      await running.exited;
    } else {
      killGroup(running.child, 'SIGKILL'); // leftover grandchildren, if any
    }
  }
});

describe('fixture plugin servers', () => {
  it.each([
    ['big-frames'],
    ['close-codes'],
    ['crash-later'],
    ['env-dump'],
    ['garbage-before-ready'],
    ['slow-ready'],
    ['stdout-spam'],
  ])('%s becomes ready, echoes, and exits 0 on SIGTERM', async (name) => {
    const plugin = run(join(FIXTURES, name));
    const ws = await connect(await plugin.ready);
    await roundTrip(ws, 'hello');
    await roundTrip(ws, Buffer.from([0, 1, 2, 255]));
    await stop(plugin);
    await expect(plugin.exited).resolves.toEqual({ code: 0, signal: null });
  });

  it('every plugin folder has a manifest named after it, except _lib', () => {
    const manifest = (name: string): unknown =>
      JSON.parse(readFileSync(join(FIXTURES, name, 'manifest.json'), 'utf8'));
    expect(manifest('no-server')).not.toHaveProperty('server');
    expect(manifest('invalid-manifest')).toMatchObject({ entry: '../outside.js' });
    expect(() => manifest('bad-json')).toThrow(SyntaxError);
    expect(() => manifest('_lib')).toThrow(/ENOENT/);
    expect(manifest('headers')).toMatchObject({ name: 'headers', server: 'server.js' });
  });

  it('garbage-before-ready prints other output before the ready line', async () => {
    const plugin = run(join(FIXTURES, 'garbage-before-ready'));
    await plugin.ready;
    expect(plugin.stdout).toContain('{"hello":1}');
    expect(plugin.stdout).toContain('a partial line completed later');
    expect(plugin.stdout.length).toBeGreaterThan(5);
  });

  it('stdout-spam prints 100 + 10 lines after ready', async () => {
    const plugin = run(join(FIXTURES, 'stdout-spam'));
    await plugin.ready;
    const errLines = (): string[] => plugin.stderr.join('').trim().split('\n');
    await waitFor(
      () => plugin.stdout.length >= 101 && errLines().length >= 10,
      5_000,
      'all of its output',
    );
    expect(plugin.stdout.filter((l) => l.startsWith('line '))).toHaveLength(100);
    expect(errLines()).toEqual(Array.from({ length: 10 }, (_, i) => `err ${i + 1}`));
  });

  it('slow-ready listens at once and prints its ready line only later', async () => {
    const plugin = run(join(FIXTURES, 'slow-ready'));
    const port = await listening(plugin);
    // Seen listening well within the 1.5 s the fixture waits before its ready line.
    expect(plugin.stdout).toEqual([]);
    expect(await plugin.ready).toBe(port);
  });

  it('never-ready serves WebSockets and stays alive without a ready line', async () => {
    const plugin = run(join(FIXTURES, 'never-ready'));
    const ws = await connect(await listening(plugin));
    await roundTrip(ws, 'serving');
    // "Never" has no event to wait for: watch for the 500 ms in which Portico, by its
    // manifest's readyTimeoutMs, would still take a ready line.
    const { readyTimeoutMs } = JSON.parse(
      readFileSync(join(FIXTURES, 'never-ready', 'manifest.json'), 'utf8'),
    ) as { readyTimeoutMs: number };
    await new Promise((r) => setTimeout(r, readyTimeoutMs));
    expect(plugin.stdout).toEqual([]);
    expect(plugin.child.exitCode).toBeNull();
  });

  it('crash-at-start exits 3 with a message on stderr', async () => {
    const plugin = run(join(FIXTURES, 'crash-at-start'));
    await expect(plugin.exited).resolves.toEqual({ code: 3, signal: null });
    await expect(plugin.ready).rejects.toThrow();
    expect(plugin.stderr.join('')).toMatch(/simulated startup failure/);
  });

  it('crash-later answers /pid and exits 1 on "crash"', async () => {
    const plugin = run(join(FIXTURES, 'crash-later'));
    const port = await plugin.ready;
    expect(await getJson(port, '/pid')).toEqual({ pid: plugin.child.pid });
    const ws = await connect(port);
    const wsClosed = closed(ws);
    ws.send('crash');
    await expect(plugin.exited).resolves.toEqual({ code: 1, signal: null });
    expect((await wsClosed).code).toBe(1006);
  });

  it('ignore-sigterm survives SIGTERM and needs SIGKILL', async () => {
    const plugin = run(join(FIXTURES, 'ignore-sigterm'));
    const ws = await connect(await plugin.ready);
    killGroup(plugin.child, 'SIGTERM');
    await waitFor(() => plugin.stdout.includes('ignoring SIGTERM'), 5_000, 'the SIGTERM handler');
    expect(plugin.child.exitCode).toBeNull();
    await roundTrip(ws, 'still here');
    await stop(plugin, 'SIGKILL');
    await expect(plugin.exited).resolves.toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('grandchild shares the process group: killing the group kills both', async () => {
    const plugin = run(join(FIXTURES, 'grandchild'));
    const port = await plugin.ready;
    const pids = await getJson(port, '/pids');
    expect(pids.pid).toBe(plugin.child.pid);
    const grandchild = pids.grandchild as number;
    expect(isAlive(grandchild)).toBe(true);
    await stop(plugin);
    await waitFor(() => !isAlive(grandchild), 5_000, 'the grandchild to be gone');
    expect(isAlive(grandchild)).toBe(false);
  });

  it('setsid-escape leaves a grandchild outside its group and session that a group kill misses', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'portico-smoke-escape-'));
    const plugin = run(join(FIXTURES, 'setsid-escape'), { PLUGIN_DATA_DIR: dataDir });
    let escapee: number | null = null;
    try {
      const port = await plugin.ready;
      escapee = await waitFor(
        async () => ((await getJson(port, '/pids')).escapee as number | null) ?? undefined,
        5_000,
        'the escaped grandchild',
      );
      const stat = readFileSync(`/proc/${escapee}/stat`, 'utf8');
      const [, ppid, pgid, sid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect([ppid, pgid, sid]).not.toContain(String(plugin.child.pid));
      await stop(plugin, 'SIGKILL');
      expect(isAlive(escapee as number)).toBe(true);
    } finally {
      // Also when the test failed before it learnt the pid: the escapee writes it to a file.
      escapee ??= readPidFile(join(dataDir, 'escapee.pid'));
      if (escapee !== null) killPid(escapee);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('headers reports the upgrade request and each HTTP request', async () => {
    const plugin = run(join(FIXTURES, 'headers'));
    const port = await plugin.ready;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/sub?x=1`, ['other', 'chosen-proto'], {
      headers: { 'x-test': 'yes' },
    });
    const first = nextMessage(ws);
    await once(ws, 'open');
    expect(ws.protocol).toBe('chosen-proto');
    const info = JSON.parse((await first).data.toString()) as {
      url: string;
      headers: Record<string, string>;
      protocol: string;
    };
    expect(info).toMatchObject({ url: '/ws/sub?x=1', protocol: 'chosen-proto' });
    expect(info.headers['x-test']).toBe('yes');
    await roundTrip(ws, 'echo after info');
    const last = await getJson(port, '/last?q=2');
    expect(last).toMatchObject({ method: 'GET', url: '/last?q=2' });
    const upgrades = (await getJson(port, '/upgrades')) as unknown as { url: string }[];
    expect(upgrades.map((u) => u.url)).toEqual(['/ws/sub?x=1']);
  });

  it('env-dump returns exactly the environment it was given', async () => {
    const plugin = run(join(FIXTURES, 'env-dump'), { PLUGIN_NAME: 'env-dump' });
    const env = await getJson(await plugin.ready, '/env');
    expect(env).toMatchObject({ PLUGIN_NAME: 'env-dump', PATH: process.env.PATH });
  });

  it('close-codes closes with 4001 and records the client close', async () => {
    const plugin = run(join(FIXTURES, 'close-codes'));
    const port = await plugin.ready;
    expect(await getJson(port, '/last-close')).toEqual({ code: null, reason: null });
    const a = await connect(port);
    const aClosed = closed(a);
    a.send('close-4001');
    expect(await aClosed).toEqual({ code: 4001, reason: 'bye from plugin' });
    const lastClose = (): Promise<string> =>
      getJson(port, '/last-close').then((seen) => JSON.stringify(seen));
    // The plugin records the first close too (its own 4001, echoed back): wait until it has.
    const first = await waitFor(async () => {
      const seen = await lastClose();
      return seen !== JSON.stringify({ code: null, reason: null }) && seen;
    });
    const b = await connect(port);
    const bClosed = closed(b);
    b.close(4123, 'client says bye');
    await bClosed;
    const last = await waitFor(async () => {
      const seen = await lastClose();
      return seen !== first && seen;
    });
    expect(JSON.parse(last)).toEqual({ code: 4123, reason: 'client says bye' });
  });

  it('big-frames sends a binary message of the requested size', async () => {
    const plugin = run(join(FIXTURES, 'big-frames'));
    const ws = await connect(await plugin.ready);
    const reply = nextMessage(ws);
    ws.send('send:1000000');
    const { data, isBinary } = await reply;
    expect(isBinary).toBe(true);
    expect(data.length).toBe(1_000_000);
    expect([data[0], data[250], data[251], data[999_999]]).toEqual([0, 250, 0, 999_999 % 251]);
  });

  it('refuses-ws answers upgrades with 403 and HTTP with 200 ok', async () => {
    const plugin = run(join(FIXTURES, 'refuses-ws'));
    const port = await plugin.ready;
    await expect(connect(port)).rejects.toThrow(/Unexpected server response: 403/);
    const http = await fetch(`http://127.0.0.1:${port}/anything`);
    expect(await http.text()).toBe('ok');
  });

  it('hangs-ws never answers the upgrade', async () => {
    const plugin = run(join(FIXTURES, 'hangs-ws'));
    const port = await plugin.ready;
    // "Never" has no event to wait for: the client's 2 s handshake timeout is the window.
    await expect(connect(port).then(() => undefined)).rejects.toThrow(/timed out/i);
    expect(await getJson(port, '/health')).toEqual({ ok: true });
    await stop(plugin);
    await expect(plugin.exited).resolves.toEqual({ code: 0, signal: null });
  });
});

describe('bundled echo plugin', () => {
  it('echoes text and binary, negotiates subprotocols, closes on request, serves HTTP', async () => {
    const plugin = run(ECHO);
    const port = await plugin.ready;

    const ws = await connect(port, '/ws/room?x=1', ['portico', 'chat']);
    expect(ws.protocol).toBe('chat');
    await roundTrip(ws, 'hello');
    await roundTrip(ws, Buffer.from([1, 2, 3]));
    const wsClosed = closed(ws);
    ws.send('__close:4321:see you');
    expect(await wsClosed).toEqual({ code: 4321, reason: 'see you' });

    // Offered only `portico`: the plugin picks none (Portico itself answers `portico` then).
    await expect(connect(port, '/ws', ['portico'])).rejects.toThrow(/no subprotocol/);
    const noProtocol = await connect(port, '/ws');
    expect(noProtocol.protocol).toBe('');
    noProtocol.close();

    await expect(connect(port, '/other')).rejects.toThrow(/404/);

    const echoed = await fetch(`http://127.0.0.1:${port}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'text/x-test' },
      body: 'body text',
    });
    expect(echoed.headers.get('content-type')).toBe('text/x-test');
    expect(await echoed.text()).toBe('body text');

    const who = await fetch(`http://127.0.0.1:${port}/whoami`, {
      headers: { 'x-plugin-user-id': 'alice', 'x-plugin-user-name': 'Alice' },
    });
    // Unsigned identity headers (not from Portico) are not believed.
    expect(who.status).toBe(401);
    expect(await who.json()).toEqual({ error: 'unverified identity' });
    expect(await getJson(port, '/health')).toEqual({ ok: true });
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);

    await stop(plugin);
    await expect(plugin.exited).resolves.toEqual({ code: 0, signal: null });
  });
});
