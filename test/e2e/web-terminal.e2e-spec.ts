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
  pausedSessions: number;
  bufferedBytes: number;
  queuedInputBytes: number;
}

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

  public constructor(public readonly conn: WsConnection) {
    for (const m of conn.received) this.append(this.decoder.write(m.data));
    conn.ws.on('message', (data: RawData) => this.append(this.decoder.write(toBuffer(data))));
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
  const clients: WsConnection[] = [];

  const openTerminal = async (query = ''): Promise<TerminalClient> => {
    const conn = await open(`${t.wsUrl}/plugin-ws/web-terminal${query}`, {
      protocols: ['portico', bearerProtocol(t.token({ roles: ['terminal'] }))],
    });
    clients.push(conn);
    return new TerminalClient(conn);
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

  afterEach(() => {
    for (const c of clients.splice(0)) c.ws.terminate();
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
        term.conn.ws.terminate();
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
      const admin = t.adminToken();
      const logs = await http(t.baseUrl, 'GET', '/api/plugins/web-terminal/logs?tail=1000', {
        token: admin,
      });
      const lines = (logs.json as { lines: { line: string }[] }).lines.map((l) => l.line);
      const port = lines
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
      clients.push(conn);
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

    it('stops reading the shell while the client does not read, then delivers all 20 MiB', async () => {
      // 20 MiB of base64 (no newline, no `_`): what arrives between the markers is the file.
      const content = randomBytes(15 * MIB).toString('base64');
      expect(content.length).toBe(20 * MIB);
      const file = join(workDir, 'big.txt');
      writeFileSync(file, content);

      const term = await openTerminal();
      await term.run('stty -echo');
      const { pid } = await health();
      const before = rssBytes(pid);

      const id = randomBytes(6).toString('hex');
      term.type(`printf '%s\\n' "_S$((1))_${id}"; cat ${file}; printf '%s\\n' "_E$((1))_${id}"\r`);
      term.conn.ws.pause();

      await waitFor(
        async () => (await health()).pausedSessions === 1,
        20_000,
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
    it('kills the shell and everything it started when the socket closes', async () => {
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
      term.conn.ws.close(1000, 'tab closed');
      await term.conn.closed;
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

    it('mounts, runs commands, fits its container, follows the theme, restarts and unmounts', async () => {
      await page.goto(`${t.baseUrl}/healthz`);
      // The console's way (common contract): fetch the entry with the token, import a Blob URL.
      const mountArgs = {
        token: t.token({ roles: ['terminal'] }),
        entry: '/api/plugins/web-terminal/assets/dist%2Findex.js',
        projectPath: workDir,
      };
      await page.evaluate(`(${MOUNT_SCRIPT})(${JSON.stringify(mountArgs)})`);
      const container = page.locator('#terminal');
      await page.locator('#terminal[data-terminal-state="open"]').waitFor({ timeout: 10_000 });
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

      await inPage((g) => g.unmountTerminal());
      expect(await page.locator('style[data-portico="web-terminal"]').count()).toBe(0);
      expect(await container.getAttribute('data-terminal-state')).toBeNull();
      expect(await inPage((g) => g.__porticoTerminals?.length)).toBe(0);
      expect(await page.locator('#terminal .xterm').count()).toBe(0);
      await waitFor(async () => (await health()).sessions === 0, 10_000, 'the session to end');
    }, 60_000);
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
