import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { connect, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

import { addressMatcher } from '../../../src/http/client-address';
import { HeaderPhaseCap, HeaderPhaseCapLogLine } from '../../../src/http/header-phase-cap';
import { waitFor } from '../../helpers/wait';

const CAP = 3;
const BURST = 6;
const GRACE_MS = 500;

describe('HeaderPhaseCap', () => {
  let server: Server;
  let cap: HeaderPhaseCap;
  let logged: HeaderPhaseCapLogLine[];
  let sockets: Socket[];

  const open = (localAddress = '127.0.0.1', head = 'GET / HTTP/1.1\r\nHost: x\r\n'): Socket => {
    const socket = connect({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      localAddress,
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => socket.write(head));
    sockets.push(socket);
    return socket;
  };
  const closed = (s: Socket): Promise<void> =>
    s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
  const counted = (n: number): Promise<true> =>
    waitFor(() => cap.inHeaderPhase === n, 5000, `${n} counted`);

  beforeEach(async () => {
    logged = [];
    sockets = [];
    server = createServer((_req, res) => res.end('ok'));
    cap = new HeaderPhaseCap({
      maxPerClient: CAP,
      graceMs: GRACE_MS,
      maxBurstPerClient: BURST,
      exempt: addressMatcher(['127.0.0.9']),
      logWindowMs: 200,
      log: (line) => logged.push(line),
    });
    cap.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('one client over the cap → new silent connections closed when their grace ends, others unaffected', async () => {
    const held = [open(), open(), open()];
    await counted(CAP);
    const over = [open(), open()];
    await Promise.all(over.map(closed));
    expect(held.filter((s) => s.closed)).toEqual([]);
    expect(cap.refused).toBe(2);
    const other = open('127.0.0.2');
    await counted(CAP + 1);
    expect(other.closed).toBe(false);
  });

  it('refusals → logged at once, then once per window as a count', async () => {
    for (let i = 0; i < CAP; i++) open();
    await counted(CAP);
    await Promise.all([open(), open(), open()].map(closed));
    expect(logged).toEqual([
      {
        event: 'connections_refused',
        reason: 'header_phase_cap',
        client: '127.0.0.1',
        cap: CAP,
        refused: 1,
      },
    ]);
    await waitFor(() => logged.length === 2, 5000, 'the summary line');
    expect(logged[1]).toMatchObject({ client: '127.0.0.1', refused: 2 });
  });

  it('a burst of silent connections beyond maxBurstPerClient → the extra ones closed at once', async () => {
    const silent = Array.from({ length: BURST + 2 }, () => open());
    const closedOrder: number[] = [];
    silent.forEach((socket, i) => socket.once('close', () => closedOrder.push(i)));
    // Once the grace is over, the address keeps only CAP of its silent connections…
    await waitFor(() => closedOrder.length === BURST + 2 - CAP, 5000, 'the rest closed');
    expect(cap.refused).toBe(BURST + 2 - CAP);
    // …and the two beyond the burst went first, at once, not at the end of a grace.
    expect(closedOrder.slice(0, 2).sort()).toEqual([BURST, BURST + 1]);
    expect(cap.inHeaderPhase).toBe(CAP);
  });

  it('a storm of complete requests from an address at the cap → all served (their heads come with them)', async () => {
    for (let i = 0; i < CAP; i++) open();
    await counted(CAP);
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS + 50)); // past their grace
    const storm = Array.from({ length: BURST - CAP }, () =>
      open('127.0.0.1', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    const answers = await Promise.all(
      storm.map(
        (s) =>
          new Promise<string>((resolve) => {
            let text = '';
            s.on('data', (chunk: Buffer) => (text += chunk.toString()));
            s.once('close', () => resolve(text));
          }),
      ),
    );
    expect(answers.map((a) => a.split('\r\n')[0])).toEqual(storm.map(() => 'HTTP/1.1 200 OK'));
    expect(cap.refused).toBe(0);
  });

  it('a request head read → slot freed; the kept-alive connection no longer counts', async () => {
    const done = open('127.0.0.1', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => done.once('data', resolve));
    expect(cap.inHeaderPhase).toBe(0);
    expect(done.closed).toBe(false);
    for (let i = 0; i < CAP; i++) open();
    await counted(CAP);
    expect(cap.refused).toBe(0);
  });

  it('a connection closed in its header phase → slot freed', async () => {
    const first = open();
    await counted(1);
    first.destroy();
    await counted(0);
    // The freed slot is usable: the address fits CAP connections again, none refused.
    for (let i = 0; i < CAP; i++) open();
    await counted(CAP);
    expect(cap.refused).toBe(0);
  });

  it('an exempt address → never counted', async () => {
    for (let i = 0; i < CAP + 2; i++) open('127.0.0.9');
    await waitFor(() => sockets.every((s) => !s.connecting), 5000, 'connections');
    const one = open();
    await counted(1);
    expect(cap.refused).toBe(0);
    expect(sockets.filter((s) => s.closed)).toEqual([]);
    one.destroy();
  });

  describe('upgrade requests', () => {
    const UPGRADE =
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';

    it('nobody listening for upgrade → answered as a plain request, as Node does', async () => {
      expect(server.listenerCount('upgrade')).toBe(0);
      const socket = open('127.0.0.1', UPGRADE);
      const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
      expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(cap.inHeaderPhase).toBe(0);
    });

    it('a gateway listening → slot freed when the head is read, before the gateway answers', async () => {
      const seen: Socket[] = [];
      const countedThen: number[] = [];
      const gateway = (_req: IncomingMessage, socket: Socket): void => {
        seen.push(socket);
        countedThen.push(cap.inHeaderPhase);
      };
      server.on('upgrade', gateway);
      expect(server.listenerCount('upgrade')).toBe(2);
      open('127.0.0.1', UPGRADE);
      await waitFor(() => seen.length === 1, 5000, 'the upgrade');
      expect(countedThen).toEqual([0]);
      seen[0]?.destroy();
      server.off('upgrade', gateway);
      expect(server.listenerCount('upgrade')).toBe(0);
    });
  });
});
