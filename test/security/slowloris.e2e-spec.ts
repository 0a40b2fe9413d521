import { get } from 'node:http';
import type { Server } from 'node:http';
import { connect, Socket } from 'node:net';

import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';

/** Where the attack comes from, and another client on the same machine (all of 127/8 is lo). */
const ATTACKER = '127.0.0.1';
const BYSTANDER = '127.0.0.2';
const CAP = 20;
const TRICKLERS = 200;

const REQUEST_HEAD = 'GET /api/plugins HTTP/1.1\r\nHost: portico\r\nX-Slow: ';
const UPGRADE_HEAD =
  'GET /plugin-ws/echo HTTP/1.1\r\nHost: portico\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Slow: ';
const KEEP_ALIVE_REQUEST = 'GET /healthz HTTP/1.1\r\nHost: portico\r\n\r\n';

/**
 * A client that sends the start of a request head, then one more byte every 100 ms, forever
 * (or, with no head, connects and sends nothing at all).
 */
class Trickler {
  public readonly socket: Socket;
  public received = '';
  public connected = false;
  public readonly closed: Promise<void>;
  private timer: NodeJS.Timeout | undefined;

  public constructor(port: number, head: string | undefined, socket?: Socket) {
    this.socket = socket ?? connect({ host: '127.0.0.1', port, localAddress: ATTACKER });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => (this.received += d.toString('latin1')));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    // Not awaited: `closed` never rejects; the trickle just stops with the socket.
    void this.closed.then(() => clearInterval(this.timer));
    const start = (): void => {
      this.connected = true;
      if (head === undefined) return;
      this.socket.write(head);
      this.timer = setInterval(() => this.socket.write('a'), 100);
    };
    if (socket === undefined) this.socket.once('connect', start);
    else start();
  }

  public get isClosed(): boolean {
    return this.socket.closed;
  }

  public destroy(): void {
    clearInterval(this.timer);
    this.socket.destroy();
  }
}

/** GET over a fresh connection from `localAddress`: the status, or the error code. */
function getFrom(port: number, path: string, localAddress: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** A connection from ATTACKER that completed one GET /healthz and stays open (keep-alive). */
function keepAliveConnection(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: ATTACKER });
    let received = '';
    const onData = (d: Buffer): void => {
      received += d.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(received)?.[1];
      if (end !== -1 && length !== undefined && received.length >= end + 4 + Number(length)) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve(socket);
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.once('connect', () => socket.write(KEEP_ALIVE_REQUEST));
  });
}

function openMany(port: number, count: number, head: (i: number) => string): Trickler[] {
  return Array.from({ length: count }, (_, i) => new Trickler(port, head(i)));
}

const bothKinds = (i: number): string => (i % 2 === 0 ? REQUEST_HEAD : UPGRADE_HEAD);

/** Connections the server holds open right now (one file descriptor each). */
function serverConnections(t: TestApp): Promise<number> {
  return new Promise((resolve, reject) =>
    (t.app.getHttpServer() as Server).getConnections((err, n) =>
      err === null ? resolve(n) : reject(err),
    ),
  );
}

describe('slowloris: clients that never finish their request head', () => {
  let plugins: ReturnType<typeof pluginsDirWith>;
  let tricklers: Trickler[] = [];

  beforeAll(() => {
    plugins = pluginsDirWith(['bundled:echo']);
  });
  afterEach(() => {
    for (const c of tricklers) c.destroy();
    tricklers = [];
  });
  afterAll(() => plugins.remove());

  describe(`per-address cap (${CAP}) on connections in their header phase`, () => {
    let t: TestApp;

    beforeAll(async () => {
      // Timeouts far longer than the test: only the cap closes anything here.
      t = await startTestApp({
        pluginsDir: plugins.dir,
        env: {
          MAX_HEADER_PHASE_CONNECTIONS_PER_IP: String(CAP),
          HTTP_HEADERS_TIMEOUT_MS: '300000',
          HTTP_KEEP_ALIVE_TIMEOUT_MS: '300000',
        },
      });
    });
    beforeEach(() =>
      waitFor(async () => (await serverConnections(t)) === 0, 10_000, 'no open connections'),
    );
    afterAll(() => t.close());

    it(`${TRICKLERS} trickling request and upgrade heads from one address → ${CAP} held, the rest closed (within a second); /healthz from another address → 200`, async () => {
      tricklers = openMany(t.port, TRICKLERS, bothKinds);
      await waitFor(
        () => tricklers.filter((c) => c.isClosed).length === TRICKLERS - CAP,
        10_000,
        'the connections over the cap to be closed',
      );
      expect(tricklers.filter((c) => !c.isClosed)).toHaveLength(CAP);
      expect(await serverConnections(t)).toBe(CAP);
      // Closed without a byte of answer: refused, not served.
      expect(tricklers.filter((c) => c.received !== '').map((c) => c.received)).toEqual([]);

      expect(await getFrom(t.port, '/healthz', BYSTANDER)).toBe(200);
      // The attacker's address is still at the cap: one more trickler from it is closed too,
      // while a complete request from it (another user behind the same NAT) is served.
      const more = openMany(t.port, 1, bothKinds);
      tricklers.push(...more);
      await more[0].closed;
      expect(more[0].received).toBe('');
      expect(await getFrom(t.port, '/healthz', ATTACKER)).toBe(200);
      expect(tricklers.filter((c) => !c.isClosed)).toHaveLength(CAP);
    });

    it('tricklers gone → their address gets its connections back', async () => {
      tricklers = openMany(t.port, CAP, bothKinds);
      await waitFor(() => tricklers.every((c) => c.connected), 10_000, 'connections');
      await waitFor(async () => (await serverConnections(t)) === CAP, 10_000, 'all held');
      // At the cap: one more trickler from the address is closed.
      const more = new Trickler(t.port, REQUEST_HEAD);
      tricklers.push(more);
      await more.closed;
      expect(more.received).toBe('');
      for (const c of tricklers) c.destroy();
      await Promise.all(tricklers.map((c) => c.closed));
      const status = await waitFor(
        async () => {
          const s = await getFrom(t.port, '/healthz', ATTACKER);
          return s === 200 && s;
        },
        10_000,
        'the address to be below the cap again',
      );
      expect(status).toBe(200);
    });

    it(`kept-alive idle connections → not counted: ${CAP} tricklers still fit beside them`, async () => {
      const keptAlive: Socket[] = [];
      for (let i = 0; i < CAP; i++) keptAlive.push(await keepAliveConnection(t.port));
      tricklers = keptAlive.map((s) => new Trickler(t.port, undefined, s));
      tricklers.push(...openMany(t.port, CAP + 1, () => REQUEST_HEAD));
      await waitFor(
        () => tricklers.filter((c) => c.isClosed).length === 1,
        10_000,
        'the one over the cap to be closed',
      );
      expect(tricklers.filter((c) => !c.isClosed)).toHaveLength(2 * CAP);
    });
  });

  describe('headers timeout (1 s)', () => {
    let t: TestApp;

    beforeAll(async () => {
      t = await startTestApp({
        pluginsDir: plugins.dir,
        env: { HTTP_HEADERS_TIMEOUT_MS: '1000', MAX_HEADER_PHASE_CONNECTIONS_PER_IP: String(CAP) },
      });
    });
    afterAll(() => t.close());

    it.each([
      ['trickling a request head', REQUEST_HEAD],
      ['trickling a WebSocket upgrade head', UPGRADE_HEAD],
      ['sending nothing', undefined],
    ])(
      'connection %s → 408 and closed; /healthz from another address → 200 meanwhile',
      async (_what, head) => {
        const slow = new Trickler(t.port, head);
        tricklers = [slow];
        await waitFor(() => slow.connected, 10_000, 'connection');
        expect(await getFrom(t.port, '/healthz', BYSTANDER)).toBe(200);
        await slow.closed;
        expect(slow.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      },
    );

    it('kept-alive connection trickling its second request head → 408 and closed', async () => {
      const slow = new Trickler(t.port, REQUEST_HEAD, await keepAliveConnection(t.port));
      tricklers = [slow];
      await slow.closed;
      expect(slow.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    });

    it(`${CAP} tricklers of both kinds → all closed by the timeout, their address usable again`, async () => {
      tricklers = openMany(t.port, CAP, bothKinds);
      await Promise.all(tricklers.map((c) => c.closed));
      expect(tricklers.map((c) => c.received.slice(0, 29))).toEqual(
        new Array<string>(CAP).fill('HTTP/1.1 408 Request Timeout\r'),
      );
      expect(await getFrom(t.port, '/healthz', ATTACKER)).toBe(200);
    });
  });
});
