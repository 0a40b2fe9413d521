import type { WebSocket } from 'ws';

import { startPorticoProcess } from '../helpers/portico-process';
import type { PorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';
import {
  command,
  figures,
  int,
  machine,
  mib,
  openSocket,
  pluginPid,
  PLUGINS_DIR,
  report,
  soakSize,
  table,
} from './soak-support';

const SIZES = {
  SOAK_MESSAGES: soakSize('SOAK_MESSAGES', 20_000),
  SOAK_MESSAGE_CONNECTIONS: soakSize('SOAK_MESSAGE_CONNECTIONS', 4),
  SOAK_MESSAGE_WINDOW: soakSize('SOAK_MESSAGE_WINDOW', 256),
};
const MESSAGES = SIZES.SOAK_MESSAGES;
const CONNECTIONS = SIZES.SOAK_MESSAGE_CONNECTIONS;
/** A connection that receives nothing for this long has lost messages. */
const STALL_MS = 30_000;

/**
 * Message `seq` of connection `conn`: every third one text, the others binary; each starts with
 * the connection and sequence number, followed by a payload whose length and bytes follow
 * from them, so an echo can be checked byte for byte without keeping what was sent.
 */
function message(conn: number, seq: number): { data: Buffer; binary: boolean } {
  if (seq % 3 === 0)
    return { data: Buffer.from(`${conn}:${seq}:${'x'.repeat(seq % 50)}`), binary: false };
  const payload = (seq * 7919) % 200;
  const data = Buffer.allocUnsafe(8 + payload);
  data.writeUInt32BE(conn, 0);
  data.writeUInt32BE(seq, 4);
  for (let j = 0; j < payload; j++) data[8 + j] = (seq + j) & 0xff;
  return { data, binary: true };
}

/** The sequence number an echoed message claims. */
function sequenceOf(data: Buffer, binary: boolean): number {
  return binary ? data.readUInt32BE(4) : Number(data.toString().split(':')[1]);
}

interface Tally {
  received: number;
  outOfOrder: number;
  corrupted: number;
  typeChanged: number;
  firstAnomaly: string;
}

/** Sends `count` messages with at most `window` unanswered and checks every echo in order. */
function stream(ws: WebSocket, conn: number, count: number, window: number): Promise<Tally> {
  const tally: Tally = {
    received: 0,
    outOfOrder: 0,
    corrupted: 0,
    typeChanged: 0,
    firstAnomaly: '',
  };
  let sent = 0;
  const sendMore = (): void => {
    while (sent < count && sent - tally.received < window) {
      const m = message(conn, sent++);
      ws.send(m.data, { binary: m.binary });
    }
  };
  return new Promise((resolveStream, reject) => {
    let stall: NodeJS.Timeout | undefined;
    const armStall = (): void => {
      clearTimeout(stall);
      stall = setTimeout(
        () =>
          reject(
            new Error(
              `connection ${conn}: nothing for ${STALL_MS} ms after ${tally.received} of ${count}`,
            ),
          ),
        STALL_MS,
      );
    };
    const anomaly = (what: string): void => {
      tally.firstAnomaly ||= `connection ${conn}, message ${tally.received}: ${what}`;
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const expectedSeq = tally.received;
      const want = message(conn, expectedSeq);
      if (isBinary !== want.binary) {
        tally.typeChanged += 1;
        anomaly(`${isBinary ? 'binary' : 'text'} instead of ${want.binary ? 'binary' : 'text'}`);
      } else if (sequenceOf(data, isBinary) !== expectedSeq) {
        tally.outOfOrder += 1;
        anomaly(`sequence ${sequenceOf(data, isBinary)} instead of ${expectedSeq}`);
      } else if (!data.equals(want.data)) {
        tally.corrupted += 1;
        anomaly('payload differs');
      }
      tally.received += 1;
      if (tally.received === count) {
        clearTimeout(stall);
        resolveStream(tally);
        return;
      }
      armStall();
      sendMore();
    });
    ws.once('close', (code: number) => {
      clearTimeout(stall);
      reject(
        new Error(`connection ${conn} closed with ${code} after ${tally.received} of ${count}`),
      );
    });
    armStall();
    sendMore();
  });
}

describe('soak: messages in order', () => {
  let host: PorticoProcess | undefined;

  beforeAll(async () => {
    host = await startPorticoProcess(PLUGINS_DIR);
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  it(`${MESSAGES} messages over ${CONNECTIONS} connections → none lost, reordered, corrupted or retyped`, async () => {
    if (host === undefined) throw new Error('host did not start');
    const h = host;
    const echoPid = await waitFor(() => pluginPid(h.pid, 'echo'), 30_000, 'the echo plugin');
    const token = h.token();
    const sockets = await Promise.all(
      Array.from({ length: CONNECTIONS }, () => openSocket(`${h.wsUrl}/plugin-ws/echo`, token)),
    );
    const before = { host: figures(h.pid), plugin: figures(echoPid) };
    const counts = sockets.map(
      (_, c) => Math.floor(MESSAGES / CONNECTIONS) + (c < MESSAGES % CONNECTIONS ? 1 : 0),
    );
    const started = Date.now();
    const tallies = await Promise.all(
      sockets.map((ws, c) => stream(ws, c, counts[c] ?? 0, SIZES.SOAK_MESSAGE_WINDOW)),
    );
    const seconds = (Date.now() - started) / 1000;
    const after = { host: figures(h.pid), plugin: figures(echoPid) };
    for (const ws of sockets) {
      ws.removeAllListeners('close');
      ws.close(1000);
    }

    const sum = (key: keyof Omit<Tally, 'firstAnomaly'>): number =>
      tallies.reduce((n, t) => n + t[key], 0);
    const received = sum('received');
    const anomalies = {
      lost: MESSAGES - received,
      outOfOrder: sum('outOfOrder'),
      corrupted: sum('corrupted'),
      typeChanged: sum('typeChanged'),
      firstAnomaly: tallies.map((t) => t.firstAnomaly).find((a) => a !== '') ?? '',
    };
    report(
      'messages',
      [
        `Command: \`${command(SIZES, 'message-order')}\`  `,
        `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine(h.pid)}.`,
        '',
        table([
          ['messages sent (⅓ text, ⅔ binary, up to 207 bytes)', int(MESSAGES)],
          [
            'connections / unanswered messages allowed per connection',
            `${CONNECTIONS} / ${SIZES.SOAK_MESSAGE_WINDOW}`,
          ],
          ['echoes received', int(received)],
          ['lost', int(anomalies.lost)],
          ['out of order', int(anomalies.outOfOrder)],
          ['payload changed', int(anomalies.corrupted)],
          ['text/binary changed', int(anomalies.typeChanged)],
          ['time (s)', `${seconds.toFixed(1)} (${int(MESSAGES / seconds)} round trips/s)`],
          ['host RSS: start / end (MiB)', `${mib(before.host.rss)} / ${mib(after.host.rss)}`],
          [
            'echo plugin RSS: start / end (MiB)',
            `${mib(before.plugin.rss)} / ${mib(after.plugin.rss)}`,
          ],
        ]),
      ].join('\n'),
    );
    expect(anomalies).toEqual({
      lost: 0,
      outOfOrder: 0,
      corrupted: 0,
      typeChanged: 0,
      firstAnomaly: '',
    });
  });
});
