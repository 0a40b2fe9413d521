/**
 * The bundled web-terminal plugin through a real Portico: real shells in real ptys, reached the
 * way the browser reaches them (`/plugin-ws/web-terminal`, token as a subprotocol), and its
 * frontend bundle in a real Chromium. Protocol: plugins/web-terminal/README.md.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

import type { Browser, Page } from 'playwright-core';
import type { RawData } from 'ws';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { browserDescribe, launchChromium } from '../helpers/browser';
import { waitFor } from '../helpers/wait';
import { connect, open, WsConnection } from '../helpers/ws-client';

const PLUGIN_DIR = resolve(__dirname, '../../plugins/web-terminal');
const MIB = 1024 * 1024;
/** The plugin server's RSS may not grow more than this while its client does not read. */
const RSS_GROWTH_LIMIT = 64 * MIB;
/** How long the plugin's memory is watched while the client does not read. */
const STALL_MS = 2000;
/** Variable the plugin sets in every session's environment (lib/session-processes.js). */
const SESSION_MARKER = 'PORTICO_TERMINAL_SESSION';

interface Health {
  ok: boolean;
  pid: number;
  sessions: number;
  detachedSessions: number;
  pausedSessions: number;
  bufferedBytes: number;
  heldBytes: number;
  queuedInputBytes: number;
}

/** A control message from the server (NUL + JSON in a text frame). */
type ServerControl =
  | { type: 'session'; id: string; resumed: boolean }
  | { type: 'session-new'; reason: 'expired' | 'unknown' };

/** The shape of a session id: base64url of 16 random bytes. */
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

function bearerProtocol(token: string): string {
  return `base64url.bearer.authorization.portico.${Buffer.from(token).toString('base64url')}`;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kib) * 1024;
}

/** Pids of live processes whose environment carries the session's marker. */
function processesOfSession(sessionId: string): number[] {
  const entry = Buffer.from(`${SESSION_MARKER}=${sessionId}\0`);
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`);
      const inside = Buffer.concat([Buffer.from([0]), entry]);
      if (environ.subarray(0, entry.length).equals(entry) || environ.includes(inside)) {
        pids.push(Number(name));
      }
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids;
}

/**
 * Calls `tick` every 20 ms for `ms`. Only for a claim that something does not happen while a
 * peer does not read (the plugin's memory does not grow): no event marks "it would have by now".
 */
async function observe(ms: number, tick: () => void): Promise<void> {
  const timer = setInterval(tick, 20);
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    clearInterval(timer);
  }
}

/** A terminal session seen from a client: what the shell printed, and ways to type into it. */
class TerminalClient {
  /** Everything received so far, decoded as UTF-8 across frame boundaries; joined when read. */
  private pieces: string[] = [];
  private length = 0;
  private readonly decoder = new StringDecoder('utf8');
  /** Called with each new piece of output and the index where it starts. */
  private readonly watchers = new Set<(piece: string, at: number) => void>();
  /** The server's control messages, in order (they are not output). */
  public readonly controls: ServerControl[] = [];

  public constructor(public readonly conn: WsConnection) {
    for (const m of conn.received) this.receive(m.data, m.isBinary);
    conn.ws.on('message', (data: RawData, isBinary: boolean) =>
      this.receive(toBuffer(data), isBinary),
    );
  }

  /** The `session` message: the id of the session this socket is attached to. */
  public async session(): Promise<{ id: string; resumed: boolean }> {
    await waitFor(() => this.controls.some((c) => c.type === 'session'), 10_000, 'a session id');
    const found = this.controls.find((c) => c.type === 'session');
    if (found?.type !== 'session') throw new Error('no session message');
    return { id: found.id, resumed: found.resumed };
  }

  /** Ends the session (the shell and its jobs) instead of leaving it detached, and waits. */
  public async end(): Promise<{ code: number; reason: string }> {
    if (this.conn.ws.readyState === this.conn.ws.OPEN) {
      this.control({ type: 'end' });
      this.conn.ws.close(1000, 'test done');
    }
    return this.conn.closed;
  }

  /** Everything received so far. */
  public get output(): string {
    if (this.pieces.length > 1) this.pieces = [this.pieces.join('')];
    return this.pieces[0] ?? '';
  }

  /** Sends keystrokes the way the frontend does: one binary frame. */
  public type(text: string): void {
    this.conn.ws.send(Buffer.from(text), { binary: true });
  }

  /** A control message: NUL then JSON, in a text frame. */
  public control(message: object): void {
    this.conn.ws.send(`\u0000${JSON.stringify(message)}`);
  }

  /**
   * Resolves with the index just past the first `text` at or after `from`. Only the new output
   * is searched as it arrives (with an overlap for a match split across pieces), so waiting for
   * the end of 20 MiB does not search 20 MiB per message.
   */
  public until(text: string, from = 0, timeoutMs = 10_000): Promise<number> {
    const found = this.output.indexOf(text, from);
    if (found >= 0) return Promise.resolve(found + text.length);
    const overlap = text.length - 1;
    let carryStart = Math.max(from, this.length - overlap);
    let carry = this.output.slice(carryStart);
    return this.waitUntil(timeoutMs, JSON.stringify(text), (piece, at, resolve) => {
      const haystack = carry + piece;
      const hit = haystack.indexOf(text);
      if (hit >= 0) {
        resolve(carryStart + hit + text.length);
        return;
      }
      const end = at + piece.length;
      carryStart = Math.max(from, end - overlap);
      carry = haystack.slice(haystack.length - (end - carryStart));
    });
  }

  /** Resolves once the output from `from` on matches `pattern` (for short outputs only). */
  public match(pattern: RegExp, from = 0, timeoutMs = 10_000): Promise<RegExpExecArray> {
    const test = (): RegExpExecArray | null => pattern.exec(this.output.slice(from));
    const now = test();
    if (now !== null) return Promise.resolve(now);
    return this.waitUntil(timeoutMs, String(pattern), (_piece, _at, resolve) => {
      const m = test();
      if (m !== null) resolve(m);
    });
  }

  /**
   * Runs `command` and returns what it printed. The markers around it are printed with shell
   * arithmetic, so the echo of the typed line (`$((1))`) never matches the output (`1`).
   */
  public async run(command: string, timeoutMs = 10_000): Promise<string> {
    const id = randomBytes(6).toString('hex');
    const from = this.length;
    this.type(`printf '%s\\n' "B$((1))-${id}"; ${command}; printf '%s\\n' "E$((1))-${id}"\r`);
    const start = await this.until(`B1-${id}\r\n`, from, timeoutMs);
    const end = await this.until(`E1-${id}`, start, timeoutMs);
    return this.output.slice(start, end - `E1-${id}`.length);
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (!isBinary && data[0] === 0) {
      this.controls.push(JSON.parse(data.subarray(1).toString('utf8')) as ServerControl);
      return;
    }
    this.append(this.decoder.write(data));
  }

  private append(piece: string): void {
    if (piece.length === 0) return;
    const at = this.length;
    this.pieces.push(piece);
    this.length += piece.length;
    for (const watch of [...this.watchers]) watch(piece, at);
  }

  private waitUntil<T>(
    timeoutMs: number,
    what: string,
    onPiece: (piece: string, at: number, resolve: (value: T) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const watch = (piece: string, at: number): void =>
        onPiece(piece, at, (value) => {
          stop();
          resolve(value);
        });
      const timer = setTimeout(() => {
        stop();
        const tail = JSON.stringify(this.output.slice(-300));
        reject(new Error(`no ${what} within ${timeoutMs} ms; output ends with ${tail}`));
      }, timeoutMs);
      const stop = (): void => {
        clearTimeout(timer);
        this.watchers.delete(watch);
      };
      this.watchers.add(watch);
    });
  }
}

describe('web-terminal plugin through Portico', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let workDir: string;
  const clients: TerminalClient[] = [];

  /** A terminal for `sub` (alice unless given), with a token valid for an hour unless given. */
  const openTerminal = async (
    query = '',
    options: { sub?: string; token?: string } = {},
  ): Promise<TerminalClient> => {
    const token = options.token ?? t.token({ sub: options.sub ?? 'alice', roles: ['terminal'] });
    const conn = await open(`${t.wsUrl}/plugin-ws/web-terminal${query}`, {
      protocols: ['portico', bearerProtocol(token)],
    });
    const client = new TerminalClient(conn);
    clients.push(client);
    return client;
  };

  const health = async (): Promise<Health> => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins/web-terminal/rpc/health', {
      token: t.token(),
    });
    if (res.status !== 200) throw new Error(`health answered ${res.status}`);
    return res.json as Health;
  };

  const waitUntilRunning = (): Promise<true> =>
    waitFor(
      async () => {
        const res = await http(t.baseUrl, 'GET', '/api/plugins/web-terminal', {
          token: t.token(),
        });
        return (res.json as { status?: string }).status === 'running';
      },
      20_000,
      'the web-terminal plugin to run',
    );

  beforeAll(async () => {
    // The manifest's entry (dist/index.js) must exist, or Portico lists the plugin as invalid.
    execFileSync(process.execPath, [join(PLUGIN_DIR, 'build.js')], { stdio: 'pipe' });
    workDir = realpathSync(mkdtempSync(join(tmpdir(), 'portico-terminal-')));
    plugins = pluginsDirWith(['bundled:web-terminal']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitUntilRunning();
  }, 60_000);

  /** The plugin's log lines (admins read them through Portico). */
  const pluginLog = async (): Promise<string[]> => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins/web-terminal/logs?tail=1000', {
      token: t.adminToken(),
    });
    return (res.json as { lines: { line: string }[] }).lines.map((l) => l.line);
  };

  // A session whose socket merely closes waits a minute for its client: each test's sessions are
  // ended for good (the `end` message), so that none outlives its test.
  afterEach(async () => {
    const remaining = clients.splice(0);
    await Promise.all(
      remaining.map((c) =>
        Promise.race([c.end(), new Promise((r) => setTimeout(r, 2000))]).finally(() =>
          c.conn.ws.terminate(),
        ),
      ),
    );
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
    if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
  });

  describe('a session', () => {
    it('runs what the user types and shows its output', async () => {
      const term = await openTerminal();
      const word = `portico-${randomBytes(6).toString('hex')}`;
      term.type(`echo ${word}\r`);
      // The output line, not the echo of the typed command (`echo portico-…`).
      await term.match(new RegExp(`[\\r\\n]${word}\\r\\n`));
      expect(term.conn.ws.protocol).toBe('portico');
    });

    it('runs a real terminal: TERM, a tty, and no plugin secrets in the environment', async () => {
      const term = await openTerminal();
      const out = await term.run(
        'echo "term=$TERM"; test -t 0 && echo tty; echo "secret=${PLUGIN_IDENTITY_SECRET:-none}"',
      );
      expect(out).toBe('term=xterm-256color\r\ntty\r\nsecret=none\r\n');
    });

    it('starts at the size in the query string, each invalid one replaced by 80x24', async () => {
      for (const [query, size] of [
        ['?cols=132&rows=43', '43 132'],
        ['?cols=0&rows=43', '43 80'],
        ['?cols=1001&rows=1000', '1000 80'],
        ['?cols=12.5&rows=x', '24 80'],
        ['?cols=-5&rows=1e2', '24 80'],
      ]) {
        const term = await openTerminal(query);
        expect(await term.run('stty size')).toBe(`${size}\r\n`);
        await term.end();
      }
    });

    it('resizes on a resize control message and ignores invalid ones', async () => {
      const term = await openTerminal();
      term.control({ type: 'resize', cols: 100, rows: 40 });
      expect(await term.run('stty size')).toBe('40 100\r\n');
      for (const bad of [
        { type: 'resize', cols: 0, rows: 40 },
        { type: 'resize', cols: 1001, rows: 40 },
        { type: 'resize', cols: 50.5, rows: 40 },
        { type: 'resize', cols: '50', rows: 40 },
        { type: 'resize' },
        { type: 'unknown' },
      ]) {
        term.control(bad);
      }
      expect(await term.run('stty size')).toBe('40 100\r\n');
    });

    it('types pasted JSON into the shell instead of reading it as a control message', async () => {
      const term = await openTerminal();
      const json = '{"type":"resize","cols":10,"rows":10}';
      term.conn.ws.send(`echo '${json}'\r`); // a text frame, as a client without binary might send
      await term.match(new RegExp(`[\\r\\n]${json.replace(/[{}]/g, '\\$&')}\\r\\n`));
      expect(await term.run('stty size')).toBe('24 80\r\n');
    });

    it('starts in the folder given as cwd, and in HOME when that folder does not exist', async () => {
      const inProject = await openTerminal(`?cwd=${encodeURIComponent(workDir)}`);
      expect(await inProject.run('pwd -P')).toBe(`${workDir}\r\n`);
      const home = realpathSync((await inProject.run('printf %s "$HOME"')).trim());
      for (const cwd of [
        join(workDir, 'missing'),
        'relative/path',
        join(workDir, '..', '\u0000'),
      ]) {
        const fallback = await openTerminal(`?cwd=${encodeURIComponent(cwd)}`);
        expect(await fallback.run('pwd -P')).toBe(`${home}\r\n`);
      }
    });

    it('closes with 1000 and the exit code when the shell exits, and ends its jobs', async () => {
      const term = await openTerminal();
      const id = (await term.run(`echo "$${SESSION_MARKER}"`)).trim();
      await term.run('nohup sleep 3600 >/dev/null 2>&1 & :');
      // bash and the job (a process in the middle of its exec shows no environment: wait).
      await waitFor(() => processesOfSession(id).length >= 2, 5_000, 'the job to start');
      term.type('exit 3\r');
      await expect(term.conn.closed).resolves.toEqual({ code: 1000, reason: 'exited 3' });
      await waitFor(() => processesOfSession(id).length === 0, 10_000, 'the job to end');
    });

    it('refuses a connection that did not come through Portico (no signed identity)', async () => {
      const port = (await pluginLog())
        .map((line) => /"ready":true,"port":(\d+)/.exec(line)?.[1])
        .find((p) => p !== undefined);
      expect(port).toBeDefined();
      const direct = await connect(`ws://127.0.0.1:${port}/ws`);
      expect(direct).toMatchObject({ kind: 'rejected', status: 401 });
      const forged = await connect(`ws://127.0.0.1:${port}/ws`, {
        headers: {
          'x-plugin-user-id': 'mallory',
          'x-plugin-user-name': '',
          'x-plugin-user-roles': 'admin',
          'x-plugin-user-iat': '1',
          'x-plugin-user-exp': String(Math.floor(Date.now() / 1000) + 60),
          'x-plugin-user-signature': `v2=${'0'.repeat(64)}`,
        },
      });
      expect(forged).toMatchObject({ kind: 'rejected', status: 401 });
    });

    it('gives no shell to a user without the admin or terminal role (4403, a reason to show)', async () => {
      const conn = await open(`${t.wsUrl}/plugin-ws/web-terminal`, {
        protocols: ['portico', bearerProtocol(t.token({ sub: 'bob', roles: ['ops'] }))],
      });
      clients.push(new TerminalClient(conn));
      expect(await conn.closed).toEqual({
        code: 4403,
        reason: 'a shell needs the role admin or terminal',
      });
    });
  });

  describe('data', () => {
    it('delivers a 1 MiB paste byte-exact and in order (binary and text frames mixed)', async () => {
      const term = await openTerminal();
      const size = MIB;
      const chunks: Buffer[] = [];
      let total = 0;
      for (let i = 0; total < size; i++) {
        const room = size - total;
        let chunk: Buffer;
        if (i % 2 === 0) {
          chunk = randomBytes(Math.min(room, 40_000 + (i % 7) * 1000));
        } else {
          // UTF-8 text with multi-byte characters; cut to whole characters within the room.
          const text = Array.from({ length: 6000 }, (_, k) => 'aé✓\n{"}\t'[(k * 7 + i) % 8]).join(
            '',
          );
          chunk = Buffer.from(text);
          while (chunk.length > room) chunk = Buffer.from(text.slice(0, room - (i % 3)));
        }
        chunks.push(chunk);
        total += chunk.length;
      }
      const payload = Buffer.concat(chunks);
      expect(payload.length).toBe(size);
      const expected = createHash('sha256').update(payload).digest('hex');

      // Raw mode: every byte value reaches the program, none is a signal or an edit.
      const id = randomBytes(6).toString('hex');
      term.type(
        `stty raw -echo -iexten; printf '%s\\n' "R$((1))-${id}"; head -c ${size} | sha256sum; ` +
          `stty sane; printf '%s\\n' "D$((1))-${id}"\r`,
      );
      const ready = await term.until(`R1-${id}`);
      chunks.forEach((chunk, i) => {
        if (i % 2 === 0) term.conn.ws.send(chunk, { binary: true });
        else term.conn.ws.send(chunk.toString('utf8')); // a text frame
      });
      const done = await term.until(`D1-${id}`, ready, 30_000);
      expect(term.output.slice(ready, done)).toContain(`${expected}  -`);
    }, 60_000);

    it('holds back a 16 MiB paste while the shell does not read, then delivers it whole', async () => {
      const term = await openTerminal();
      const size = 16 * MIB;
      const payload = randomBytes(size);
      const expected = createHash('sha256').update(payload).digest('hex');
      const id = randomBytes(6).toString('hex');
      term.type(
        `stty raw -echo -iexten; printf '%s\\n' "R$((1))-${id}"; sleep 2; ` +
          `head -c ${size} | sha256sum; stty sane; printf '%s\\n' "D$((1))-${id}"\r`,
      );
      const ready = await term.until(`R1-${id}`);
      for (let at = 0; at < size; at += 64 * 1024) {
        term.conn.ws.send(payload.subarray(at, at + 64 * 1024), { binary: true });
      }
      // While `sleep` runs, the plugin queues at most its high-water mark and one more message.
      let peakQueued = 0;
      for (const until = Date.now() + 1000; Date.now() < until;) {
        peakQueued = Math.max(peakQueued, (await health()).queuedInputBytes);
      }
      expect(peakQueued).toBeGreaterThan(0);
      expect(peakQueued).toBeLessThanOrEqual(MIB + 64 * 1024);
      const done = await term.until(`D1-${id}`, ready, 30_000);
      expect(term.output.slice(ready, done)).toContain(`${expected}  -`);
    }, 60_000);

    it('stops reading the shell while the client does not read: memory stays bounded', async () => {
      // An endless producer: the kernel's socket buffers on the way (up to tens of MiB each on
      // loopback, tcp_rmem/tcp_wmem) fill whatever their size, and then only the plugin's flow
      // control stands between the shell and the plugin's memory.
      const term = await openTerminal();
      await term.run('stty -echo');
      const { pid } = await health();
      const before = rssBytes(pid);
      term.type('base64 -w 76 /dev/urandom\r');
      term.conn.ws.pause();

      await waitFor(
        async () => (await health()).pausedSessions === 1,
        60_000,
        'the plugin to stop reading the pty',
      );
      let peak = before;
      await observe(STALL_MS, () => {
        peak = Math.max(peak, rssBytes(pid));
      });
      const stalled = await health();
      expect(stalled.pausedSessions).toBe(1);
      expect(stalled.bufferedBytes).toBeLessThan(2 * MIB);
      expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
      // Not drained: the session (and its producer) ends here.
      term.control({ type: 'end' });
      term.conn.ws.terminate();
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 120_000);

    it('delivers all of a 20 MiB cat, byte-exact, to a client that paused and resumed', async () => {
      // 20 MiB of base64 (no newline, no `_`): what arrives between the markers is the file.
      const content = randomBytes(15 * MIB).toString('base64');
      expect(content.length).toBe(20 * MIB);
      const file = join(workDir, 'big.txt');
      writeFileSync(file, content);

      const term = await openTerminal();
      await term.run('stty -echo');
      const id = randomBytes(6).toString('hex');
      term.type(`printf '%s\\n' "_S$((1))_${id}"; cat ${file}; printf '%s\\n' "_E$((1))_${id}"\r`);
      term.conn.ws.pause();
      await observe(STALL_MS, () => undefined);
      term.conn.ws.resume();
      const start = await term.until(`_S1_${id}\r\n`, 0, 30_000);
      const end = await term.until(`_E1_${id}`, start, 60_000);
      const received = term.output.slice(start, end - `_E1_${id}`.length);
      expect(received.length).toBe(content.length);
      expect(received === content).toBe(true); // not toBe(): a 20 MiB diff helps nobody
      expect((await health()).pausedSessions).toBe(0);
    }, 120_000);
  });

  describe('ending a session', () => {
    it('kills the shell and everything it started when the client ends the session', async () => {
      const term = await openTerminal();
      const id = (await term.run(`echo "$${SESSION_MARKER}"`)).trim();
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      await term.run(
        'sleep 3600 & nohup sleep 3601 >/dev/null 2>&1 & setsid sleep 3602 >/dev/null 2>&1 & :',
      );
      await waitFor(
        () => processesOfSession(id).length >= 4,
        10_000,
        'the shell and its three jobs',
      );
      term.control({ type: 'end' });
      expect(await term.conn.closed).toEqual({ code: 1000, reason: 'session ended' });
      await waitFor(() => processesOfSession(id).length === 0, 10_000, 'every process to end');
    });

    it('closes 1012 on a plugin restart, leaves no shell behind, and serves again after', async () => {
      const term = await openTerminal();
      const id = (await term.run(`echo "$${SESSION_MARKER}"`)).trim();
      const res = await http(t.baseUrl, 'POST', '/api/plugins/web-terminal/restart', {
        token: t.adminToken(),
      });
      expect(res.status).toBe(202);
      expect((await term.conn.closed).code).toBe(1012);
      await waitFor(() => processesOfSession(id).length === 0, 10_000, 'the shell to end');
      await waitUntilRunning();
      const again = await openTerminal();
      expect(await again.run('echo ok')).toBe('ok\r\n');
    }, 40_000);
  });

  describe('sessions that survive their socket', () => {
    /** A word to find in the output, different in every test. */
    const word = (): string => randomBytes(6).toString('hex');

    const untilDetached = (count: number): Promise<true> =>
      waitFor(
        async () => (await health()).detachedSessions === count,
        10_000,
        `${count} detached session(s)`,
      );

    it('keeps the shell when the socket drops and replays what it printed meanwhile', async () => {
      const term = await openTerminal();
      const { id, resumed } = await term.session();
      expect(id).toMatch(SESSION_ID);
      expect(resumed).toBe(false);
      const rand = word();
      const marker = (await term.run(`export FOO=bar-${rand}; echo "$${SESSION_MARKER}"`)).trim();
      // Printed after the socket is gone: the arithmetic keeps the typed line apart.
      await term.run(`(sleep 2; printf '%s\\n' "late-$((1))-${rand}") & :`);
      term.conn.ws.terminate(); // no close frame: a network blip (the plugin sees 1006)
      await untilDetached(1);
      await waitFor(async () => (await health()).heldBytes > 0, 10_000, 'output while detached');
      expect(processesOfSession(marker).length).toBeGreaterThanOrEqual(1); // the shell runs on

      const again = await openTerminal(`?session=${id}&cols=100&rows=30`);
      expect(await again.session()).toEqual({ id, resumed: true });
      await again.until(`late-1-${rand}\r\n`);
      expect(await again.run('echo "$FOO"')).toBe(`bar-${rand}\r\n`);
      expect(await again.run(`echo "$${SESSION_MARKER}"`)).toBe(`${marker}\r\n`);
      expect(await again.run('stty size')).toBe('30 100\r\n'); // the size of the new client
      expect(again.controls.some((c) => c.type === 'session-new')).toBe(false);
      expect((await health()).detachedSessions).toBe(0);
    });

    it('re-attaches with a fresh token after Portico closed the socket with 4401', async () => {
      // Portico ends a socket 30 s (its clock tolerance) after the token's `exp`: a token that
      // expired 27 s ago is accepted and closed about 3 s later.
      const expiring = t.token({ sub: 'alice', roles: ['terminal'], expiresInSeconds: -27 });
      const term = await openTerminal('', { token: expiring });
      const { id } = await term.session();
      const rand = word();
      await term.run(`export FOO=bar-${rand}`);
      const started = Date.now();
      expect(await term.conn.closed).toEqual({ code: 4401, reason: 'token expired' });
      expect(Date.now() - started).toBeLessThan(10_000);

      const again = await openTerminal(`?session=${id}`); // a fresh token, as the console gets
      expect(await again.session()).toEqual({ id, resumed: true });
      expect(await again.run('echo "$FOO"')).toBe(`bar-${rand}\r\n`);
    }, 30_000);

    it("never attaches another user's shell, and answers as for an id it never gave out", async () => {
      const alice = await openTerminal();
      const { id } = await alice.session();
      const rand = word();
      await alice.run(`export FOO=bar-${rand}`);

      const bob = await openTerminal(`?session=${id}`, { sub: 'bob' });
      const bobs = await bob.session();
      expect(bob.controls[0]).toEqual({ type: 'session-new', reason: 'unknown' });
      expect(bobs.resumed).toBe(false);
      expect(bobs.id).not.toBe(id);
      expect(await bob.run('echo "[$FOO]"')).toBe('[]\r\n');

      // The same answer for an id nobody was given, and for one that is not an id at all.
      for (const other of [randomBytes(16).toString('base64url'), 'not-an-id', '']) {
        const stranger = await openTerminal(`?session=${encodeURIComponent(other)}`);
        await stranger.session();
        expect(stranger.controls[0]).toEqual({ type: 'session-new', reason: 'unknown' });
        await stranger.end();
      }
      // Alice's shell is still hers, attached, untouched.
      expect(alice.conn.ws.readyState).toBe(alice.conn.ws.OPEN);
      expect(await alice.run('echo "$FOO"')).toBe(`bar-${rand}\r\n`);
    });

    it('hands the session to a second attach of the same user and closes the first with 4409', async () => {
      const first = await openTerminal();
      const { id } = await first.session();
      const rand = word();
      await first.run(`export FOO=bar-${rand}`);
      const second = await openTerminal(`?session=${id}`);
      expect(await second.session()).toEqual({ id, resumed: true });
      expect(await first.conn.closed).toEqual({ code: 4409, reason: 'attached elsewhere' });
      expect(await second.run('echo "$FOO"')).toBe(`bar-${rand}\r\n`);
      expect((await health()).sessions).toBe(1);
    });

    it('ends every process of the session when the grace period runs out', async () => {
      const term = await openTerminal('?detachMs=1000');
      const { id } = await term.session();
      const marker = (await term.run(`echo "$${SESSION_MARKER}"`)).trim();
      await term.run(
        'sleep 3600 & nohup sleep 3601 >/dev/null 2>&1 & setsid sleep 3602 >/dev/null 2>&1 & :',
      );
      await waitFor(
        () => processesOfSession(marker).length >= 4,
        10_000,
        'the shell and its three jobs',
      );
      term.conn.ws.close(4000, 'tab reloading');
      await untilDetached(1);
      await waitFor(() => processesOfSession(marker).length === 0, 10_000, 'every process to end');
      expect((await health()).detachedSessions).toBe(0);
      const log = await pluginLog();
      expect(log.some((l) => l.includes(`"session":"${marker}","reason":"detach expired"`))).toBe(
        true,
      );
      expect(log.some((l) => l.includes(`"session":"${marker}","code":4000,"graceMs":1000`))).toBe(
        true,
      );

      // Its user comes back too late: a new shell, and word that the old one ended.
      const late = await openTerminal(`?session=${id}`);
      const fresh = await late.session();
      expect(late.controls[0]).toEqual({ type: 'session-new', reason: 'expired' });
      expect(fresh.id).not.toBe(id);
    });

    it('lets a connection shorten the grace period, never lengthen it', async () => {
      const graceOf = async (marker: string): Promise<string> =>
        waitFor(
          async () =>
            (await pluginLog())
              .map((l) => new RegExp(`"session":"${marker}","code":\\d+,"graceMs":(\\d+)`).exec(l))
              .find((m) => m !== null)?.[1],
          10_000,
          'the session_detached line',
        );
      const graces: string[] = [];
      for (const detachMs of ['1', '999999999', 'soon']) {
        const term = await openTerminal(`?detachMs=${detachMs}`);
        const { id } = await term.session();
        const marker = (await term.run(`echo "$${SESSION_MARKER}"`)).trim();
        term.conn.ws.terminate();
        const grace = await graceOf(marker);
        graces.push(grace);
        if (grace === '1000') {
          await waitFor(() => processesOfSession(marker).length === 0, 10_000, 'the end');
        } else {
          const again = await openTerminal(`?session=${id}`);
          expect(await again.session()).toEqual({ id, resumed: true });
          await again.end();
        }
      }
      expect(graces).toEqual(['1000', '60000', '60000']);
    });

    it('ends with the shell: exit closes 1000, and its id is no longer attached to', async () => {
      const term = await openTerminal();
      const { id } = await term.session();
      term.type('exit 3\r');
      expect(await term.conn.closed).toEqual({ code: 1000, reason: 'exited 3' });
      const again = await openTerminal(`?session=${id}`);
      await again.session();
      expect(again.controls[0]).toEqual({ type: 'session-new', reason: 'expired' });
      expect(await again.run('echo "[$FOO]"')).toBe('[]\r\n');
      // Another user asking for that ended id hears "unknown", as for any id not theirs.
      const bob = await openTerminal(`?session=${id}`, { sub: 'bob' });
      await bob.session();
      expect(bob.controls[0]).toEqual({ type: 'session-new', reason: 'unknown' });
    });

    it('ends the oldest detached session beyond 8 of one user', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) {
        const term = await openTerminal('', { sub: 'carol' });
        ids.push((await term.session()).id);
        term.conn.ws.terminate();
        if (i < 8) await untilDetached(i + 1);
      }
      // The first one went when the ninth detached; the other eight wait.
      await waitFor(
        async () =>
          (await pluginLog()).some((l) =>
            l.includes('"reason":"too many detached sessions for this user"'),
          ),
        10_000,
        'the oldest session to end',
      );
      expect((await health()).detachedSessions).toBe(8);
      const first = await openTerminal(`?session=${ids[0]}`, { sub: 'carol' });
      await first.session();
      expect(first.controls[0]).toEqual({ type: 'session-new', reason: 'expired' });
      for (const id of ids.slice(1)) {
        const back = await openTerminal(`?session=${id}`, { sub: 'carol' });
        expect(await back.session()).toEqual({ id, resumed: true });
      }
      expect((await health()).detachedSessions).toBe(0);
    }, 60_000);

    it('holds at most 1 MiB of output while detached, then delivers all of it in order', async () => {
      // 3 MiB of base64 (no newline, no `_`): what arrives between the markers is the file.
      const content = randomBytes(3 * 0.75 * MIB).toString('base64');
      const file = join(workDir, 'detached.txt');
      writeFileSync(file, content);
      const term = await openTerminal();
      const { id } = await term.session();
      await term.run('stty -echo');
      const rand = word();
      term.type(
        `printf '%s\\n' "_R$((1))_${rand}"; sleep 2; ` +
          `printf '%s\\n' "_S$((1))_${rand}"; cat ${file}; printf '%s\\n' "_E$((1))_${rand}"\r`,
      );
      await term.until(`_R1_${rand}`); // the shell has the line
      term.conn.ws.terminate(); // before `sleep 2` ends: all of the output comes while detached
      await untilDetached(1);
      await waitFor(
        async () => (await health()).pausedSessions === 1,
        20_000,
        'the plugin to stop reading the pty',
      );
      // Paused, the plugin holds what it has; a few looks over half a second see no growth.
      const held: number[] = [];
      for (let i = 0; i < 5; i++) {
        held.push((await health()).heldBytes);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(Math.min(...held)).toBeGreaterThan(MIB - 64 * 1024);
      expect(Math.max(...held)).toBeLessThanOrEqual(MIB);

      const again = await openTerminal(`?session=${id}`);
      const start = await again.until(`_S1_${rand}\r\n`, 0, 30_000);
      const end = await again.until(`_E1_${rand}`, start, 30_000);
      const received = again.output.slice(start, end - `_E1_${rand}`.length);
      expect(received.length).toBe(content.length);
      expect(received === content).toBe(true);
      expect((await health()).pausedSessions).toBe(0);
    }, 60_000);
  });

  browserDescribe('its frontend in Chromium', () => {
    let browser: Browser;
    let page: Page;

    beforeAll(async () => {
      browser = await launchChromium();
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
    });

    beforeEach(async () => {
      page = await (await browser.newContext()).newPage();
    });

    afterEach(async () => {
      await page?.context().close();
    });

    /** What the page exposes: the plugin's test hook and the stand-ins MOUNT_SCRIPT adds. */
    const inPage = <T>(fn: (page: PageGlobals) => T): Promise<T> =>
      page.evaluate(`(${fn.toString()})(globalThis)`) as Promise<T>;

    const terminalText = (): Promise<string> =>
      inPage((g) => g.__porticoTerminals?.[0]?.text() ?? '');

    const waitForText = (needle: string): Promise<unknown> =>
      page.waitForFunction(
        (n) =>
          ((globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.text() ?? '').includes(
            n,
          ),
        needle,
        { timeout: 10_000 },
      );

    /** Mounts the bundle in `#terminal` as the console does, with `token` in localStorage. */
    const mountTerminal = async (token: string): Promise<void> => {
      await page.goto(`${t.baseUrl}/healthz`);
      // The console's way (common contract): fetch the entry with the token, import a Blob URL.
      const mountArgs = {
        token,
        entry: '/api/plugins/web-terminal/assets/dist%2Findex.js',
        projectPath: workDir,
      };
      await page.evaluate(`(${MOUNT_SCRIPT})(${JSON.stringify(mountArgs)})`);
      await page.locator('#terminal[data-terminal-state="open"]').waitFor({ timeout: 10_000 });
    };

    /** Types `command` into the terminal, key by key as a user would, and presses Enter. */
    const typeLine = async (command: string): Promise<void> => {
      await page.keyboard.type(command);
      await page.keyboard.press('Enter');
    };

    it('mounts, runs commands, fits its container, follows the theme, restarts and unmounts', async () => {
      await mountTerminal(t.token({ roles: ['terminal'] }));
      const container = page.locator('#terminal');
      expect(await page.locator('style[data-portico="web-terminal"]').count()).toBe(1);

      await page.keyboard.type('echo browser-$((6*7)); pwd -P');
      await page.keyboard.press('Enter');
      await waitForText('browser-42');
      expect(await terminalText()).toContain(`\n${workDir}`);

      // A narrower container: ResizeObserver → fit → resize message → the shell sees it.
      const colsBefore = await inPage((g) => g.__porticoTerminals?.[0]?.terminal.cols);
      await inPage((g) => g.setTerminalWidth('420px'));
      await page.waitForFunction(
        (c) => (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.terminal.cols !== c,
        colsBefore,
        { timeout: 10_000 },
      );
      const size = await inPage((g) => {
        const term = g.__porticoTerminals?.[0]?.terminal;
        return `${term?.rows} ${term?.cols}`;
      });
      await page.keyboard.type('stty size | sed "s/^/size=/"');
      await page.keyboard.press('Enter');
      await waitForText(`size=${size}`);

      // A 1.3 MiB paste: sent in 64 KiB messages, in order (xterm turns each \n into \r).
      const pasted = Array.from({ length: 40_000 }, (_, i) => `line ${i} ✓ ${'x'.repeat(i % 40)}`);
      const pasteText = `${pasted.join('\n')}\n`;
      const pasteBytes = Buffer.from(pasteText.replace(/\n/g, '\r'));
      const pasteSha = createHash('sha256').update(pasteBytes).digest('hex');
      await page.keyboard.type(
        `stty raw -echo -iexten; printf 'PASTE-%s\\n' $((6*7)); head -c ${pasteBytes.length} | sha256sum; stty sane`,
      );
      await page.keyboard.press('Enter');
      await waitForText('PASTE-42');
      await page.evaluate(
        (text) =>
          (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.terminal.paste(text),
        pasteText,
      );
      await waitForText(`${pasteSha}  -`);

      await inPage((g) => g.setTheme('light'));
      expect(
        await inPage((g) => g.__porticoTerminals?.[0]?.terminal.options.theme?.background),
      ).toBe('#ffffff');

      await page.keyboard.type('exit');
      await page.keyboard.press('Enter');
      await page.locator('#terminal[data-terminal-close-code="1000"]').waitFor({ timeout: 10_000 });
      await waitForText('[process exited]');
      expect(await container.getAttribute('data-terminal-state')).toBe('closed');
      await page.keyboard.press('Enter'); // a new session
      await page.locator('#terminal[data-terminal-state="open"]').waitFor({ timeout: 10_000 });
      await page.keyboard.type('echo again-$((1+1))');
      await page.keyboard.press('Enter');
      await waitForText('again-2');
      // It asked for no session: had it asked for the exited one, the server would have said so.
      expect(await terminalText()).not.toContain('[new session');

      await inPage((g) => g.unmountTerminal());
      expect(await page.locator('style[data-portico="web-terminal"]').count()).toBe(0);
      expect(await container.getAttribute('data-terminal-state')).toBeNull();
      expect(await inPage((g) => g.__porticoTerminals?.length)).toBe(0);
      expect(await page.locator('#terminal .xterm').count()).toBe(0);
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 60_000);

    it('keeps its shell and its screen across a token expiry (4401, then a fresh token)', async () => {
      // Closed by Portico about 3 s from now (30 s of clock tolerance after an `exp` 27 s ago).
      await mountTerminal(t.token({ roles: ['terminal'], expiresInSeconds: -27 }));
      const rand = randomBytes(6).toString('hex');
      await typeLine(`export FOO=bar-${rand}; echo set-$((6*7))`);
      await waitForText('set-42');
      // The console refreshes the token; the terminal reads it again for its next connection.
      await page.evaluate(
        (token) => (globalThis as unknown as PageGlobals).localStorage.setItem('auth-token', token),
        t.token({ roles: ['terminal'] }),
      );
      await page
        .locator('#terminal[data-terminal-close-code="4401"][data-terminal-state="open"]')
        .waitFor({ timeout: 15_000 });
      await typeLine('echo "foo=$FOO"');
      await waitForText(`foo=bar-${rand}`);
      const text = await terminalText();
      // A newer token was stored before the close: the terminal reconnects without a word.
      expect(text).not.toContain('[sign-in expired');
      expect(text).toContain('set-42'); // the screen was kept
      expect(text).not.toContain('[new session');
      expect((await health()).sessions).toBe(1);
      await inPage((g) => g.unmountTerminal());
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 30_000);

    it('says so when no fresh token is there yet at a 4401, holds the keys typed meanwhile, and delivers them to the same shell', async () => {
      await mountTerminal(t.token({ roles: ['terminal'], expiresInSeconds: -27 }));
      const rand = randomBytes(6).toString('hex');
      await typeLine(`export FOO=held-${rand}; echo set-$((6*7))`);
      await waitForText('set-42');
      // Closed with 4401 while localStorage still holds the expired token: reconnect attempts
      // fail (401 before the 101, seen as 1006) until the console stores a new one. The notice
      // stays on screen; the close-code attribute moves on to 1006 within a second.
      await waitForText('[sign-in expired, reconnecting…]');
      await typeLine('echo "typed-while-away=$FOO"');
      await page.evaluate(
        (token) => (globalThis as unknown as PageGlobals).localStorage.setItem('auth-token', token),
        t.token({ roles: ['terminal'] }),
      );
      await page.locator('#terminal[data-terminal-state="open"]').waitFor({ timeout: 30_000 });
      await waitForText(`typed-while-away=held-${rand}`);
      expect(await terminalText()).not.toContain('[new session');
      await inPage((g) => g.unmountTerminal());
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 60_000);

    it('ends its shell when the page goes away, without waiting for the grace period', async () => {
      await mountTerminal(t.token({ roles: ['terminal'] }));
      await typeLine(`echo "marker=$${SESSION_MARKER}"`);
      // The typed command holds `marker=` too: wait for the value the shell prints.
      await waitFor(
        async () => /marker=[0-9a-f]{24}/.test(await terminalText()),
        10_000,
        'the shell to print its session marker',
      );
      const marker = /marker=([0-9a-f]{24})/.exec(await terminalText())?.[1];
      expect(marker).toBeDefined();
      await page.goto(`${t.baseUrl}/healthz`); // pagehide: the page cannot come back to it
      await waitFor(async () => (await health()).sessions === 0, 5_000, 'the session to end');
      const ended = `"session":"${marker}","reason":"ended by the client"`;
      expect((await pluginLog()).some((l) => l.includes(ended))).toBe(true);
    });

    it('says so when a plugin restart ended its shell, and goes on in a new one', async () => {
      await mountTerminal(t.token({ roles: ['terminal'] }));
      const rand = randomBytes(6).toString('hex');
      await typeLine(`export FOO=bar-${rand}; echo set-$((6*7))`);
      await waitForText('set-42');
      const res = await http(t.baseUrl, 'POST', '/api/plugins/web-terminal/restart', {
        token: t.adminToken(),
      });
      expect(res.status).toBe(202);
      await waitForText('[new session: the previous one ended]');
      await page.locator('#terminal[data-terminal-state="open"]').waitFor({ timeout: 20_000 });
      await typeLine('echo "foo=[$FOO]"');
      await waitForText('foo=[]');
      await inPage((g) => g.unmountTerminal());
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 40_000);
  });
});

/** The page's globals this suite uses (no DOM types here: tsconfig's lib is ES2022 only). */
interface PageGlobals {
  /** The plugin's test hook (plugins/web-terminal/README.md, "Testing"). */
  __porticoTerminals?: {
    readonly terminal: {
      readonly cols: number;
      readonly rows: number;
      readonly options: { readonly theme?: { readonly background?: string } };
      paste(text: string): void;
    };
    readonly state: string;
    text(): string;
  }[];
  /** Where the console keeps the token (the terminal reads it for every connection). */
  localStorage: { setItem(key: string, value: string): void };
  setTheme(theme: 'light' | 'dark'): void;
  setTerminalWidth(width: string): void;
  unmountTerminal(): void;
}

/**
 * Runs in the page: loads the bundle as Portico's console does and mounts it in `#terminal`
 * with a stand-in `api`. A string, because ts-jest would turn `import()` into `require()`.
 */
const MOUNT_SCRIPT = `async ({ token, entry, projectPath }) => {
  localStorage.setItem('auth-token', token);
  const res = await fetch(entry, { headers: { authorization: 'Bearer ' + token } });
  if (!res.ok) throw new Error('entry answered ' + res.status);
  const url = URL.createObjectURL(new Blob([await res.text()], { type: 'text/javascript' }));
  const mod = await import(url);
  const container = document.createElement('div');
  container.id = 'terminal';
  container.style.cssText = 'width: 800px; height: 400px';
  document.body.appendChild(container);
  let theme = 'dark';
  const listeners = new Set();
  const api = {
    get context() {
      return { theme, project: { name: 'project', path: projectPath }, session: null };
    },
    onContextChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    rpc: async () => ({}),
  };
  globalThis.setTheme = (next) => {
    theme = next;
    for (const listener of listeners) listener(api.context);
  };
  globalThis.setTerminalWidth = (width) => {
    container.style.width = width;
  };
  globalThis.unmountTerminal = () => mod.unmount(container);
  mod.mount(container, api);
}`;
