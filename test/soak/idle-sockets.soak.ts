import type { WebSocket } from 'ws';

import { startPorticoProcess } from '../helpers/portico-process';
import type { PorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';
import {
  closed,
  command,
  fdLimit,
  figures,
  int,
  machine,
  mib,
  openSocket,
  pluginPid,
  PLUGINS_DIR,
  pooled,
  report,
  soakSize,
  table,
  wsConnections,
} from './soak-support';

const SIZES = {
  SOAK_IDLE_SOCKETS: soakSize('SOAK_IDLE_SOCKETS', 300),
  SOAK_CONNECT_CONCURRENCY: soakSize('SOAK_CONNECT_CONCURRENCY', 32),
  SOAK_PING_INTERVAL_MS: soakSize('SOAK_PING_INTERVAL_MS', 2000),
  SOAK_IDLE_PING_ROUNDS: soakSize('SOAK_IDLE_PING_ROUNDS', 2),
};
const SOCKETS = SIZES.SOAK_IDLE_SOCKETS;
/** Descriptors a finished run may still hold beyond the start (timers, a metrics request). */
const FD_SLACK = 8;

describe('soak: concurrent idle WebSockets', () => {
  let host: PorticoProcess | undefined;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    host = await startPorticoProcess(PLUGINS_DIR, {
      env: { WS_PING_INTERVAL_MS: String(SIZES.SOAK_PING_INTERVAL_MS) },
    });
  }, 60_000);

  afterAll(async () => {
    for (const ws of sockets) ws.terminate();
    await host?.stop();
  });

  it(`${SOCKETS} idle WebSockets to echo → all open, alive after the keepalive pings, all echo, every fd released`, async () => {
    if (host === undefined) throw new Error('host did not start');
    const h = host;
    const echoPid = await waitFor(() => pluginPid(h.pid, 'echo'), 30_000, 'the echo plugin');
    const limit = fdLimit(h.pid);
    const before = { host: figures(h.pid), plugin: figures(echoPid) };
    // Each relayed WebSocket holds two sockets in the host: the client's and the plugin's.
    const need = before.host.fds + 2 * SOCKETS + FD_SLACK;
    if (need > limit)
      throw new Error(`${SOCKETS} sockets need ~${need} fds in the host; its limit is ${limit}`);

    const url = `${h.wsUrl}/plugin-ws/echo`;
    const token = h.token();
    let refused = 0;
    let firstRefusal = '';
    const openStarted = Date.now();
    await pooled(SOCKETS, SIZES.SOAK_CONNECT_CONCURRENCY, async () => {
      try {
        sockets.push(await openSocket(url, token));
      } catch (err) {
        refused += 1;
        firstRefusal ||= String(err);
      }
    });
    const openSeconds = (Date.now() - openStarted) / 1000;
    expect({ refused, firstRefusal }).toEqual({ refused: 0, firstRefusal: '' });
    await waitFor(async () => (await wsConnections(h, 'echo')) === SOCKETS, 60_000, 'gauge');
    const open = { host: figures(h.pid), plugin: figures(echoPid) };

    // Idle: nothing is sent until Portico has pinged every socket a few times.
    const pings = new Array<number>(sockets.length).fill(0);
    let closedEarly = 0;
    sockets.forEach((ws, i) => {
      ws.on('ping', () => (pings[i] = (pings[i] ?? 0) + 1));
      ws.once('close', () => (closedEarly += 1));
    });
    await waitFor(
      () => pings.every((n) => n >= SIZES.SOAK_IDLE_PING_ROUNDS),
      SIZES.SOAK_PING_INTERVAL_MS * (SIZES.SOAK_IDLE_PING_ROUNDS + 3) + 60_000,
      'keepalive pings on every socket',
    );
    const idle = { host: figures(h.pid), plugin: figures(echoPid) };

    let echoed = 0;
    await Promise.all(
      sockets.map(
        (ws, i) =>
          new Promise<void>((resolveEcho, reject) => {
            ws.once('message', (data: Buffer) => {
              if (data.toString() === `idle-${i}`) echoed += 1;
              resolveEcho();
            });
            ws.once('close', () => reject(new Error(`socket ${i} closed before its echo`)));
            ws.send(`idle-${i}`);
          }),
      ),
    );
    expect({ closedEarly, echoed }).toEqual({ closedEarly: 0, echoed: SOCKETS });

    const closeStarted = Date.now();
    await Promise.all(
      sockets.map((ws) => {
        ws.removeAllListeners('close');
        const done = closed(ws);
        ws.close(1000, 'soak done');
        return done;
      }),
    );
    await waitFor(async () => (await wsConnections(h, 'echo')) === 0, 60_000, 'gauge at 0');
    const hostFdsAfter = await waitFor(
      () => {
        const fds = figures(h.pid).fds;
        return fds <= before.host.fds + FD_SLACK ? fds : undefined;
      },
      60_000,
      'host fds back to the start',
    ).catch(() => figures(h.pid).fds);
    // The plugin closes its side after the host's, and a loaded machine lets it lag: wait for
    // its descriptors too before they are counted.
    const pluginFdsAfter = await waitFor(
      () => {
        const fds = figures(echoPid).fds;
        return fds <= before.plugin.fds + FD_SLACK ? fds : undefined;
      },
      60_000,
      'echo plugin fds back to the start',
    ).catch(() => figures(echoPid).fds);
    const closeSeconds = (Date.now() - closeStarted) / 1000;
    const after = {
      host: { ...figures(h.pid), fds: hostFdsAfter },
      plugin: { ...figures(echoPid), fds: pluginFdsAfter },
    };

    const perConnection = (a: number, b: number): string => ((a - b) / SOCKETS / 1024).toFixed(1);
    report(
      'idle',
      [
        `Command: \`${command(SIZES, 'idle-sockets')}\`  `,
        `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine(h.pid)}.`,
        '',
        table([
          ['WebSockets opened / refused', `${int(sockets.length)} / ${int(refused)}`],
          [
            'time to open them all (s)',
            `${openSeconds.toFixed(1)} (${int(SOCKETS / openSeconds)}/s)`,
          ],
          [`keepalive pings per socket while idle (min)`, int(Math.min(...pings))],
          ['closed while idle', int(closedEarly)],
          ['echo answered after idling', `${int(echoed)} of ${int(SOCKETS)}`],
          [
            'host RSS: start / all open / after pings / all closed (MiB)',
            `${mib(before.host.rss)} / ${mib(open.host.rss)} / ${mib(idle.host.rss)} / ${mib(after.host.rss)}`,
          ],
          ['host memory per idle WebSocket (KiB)', perConnection(idle.host.rss, before.host.rss)],
          [
            'host open fds: start / all open / all closed',
            `${int(before.host.fds)} / ${int(open.host.fds)} / ${int(after.host.fds)}`,
          ],
          [
            'echo plugin RSS: start / all open / all closed (MiB)',
            `${mib(before.plugin.rss)} / ${mib(open.plugin.rss)} / ${mib(after.plugin.rss)}`,
          ],
          [
            'echo plugin open fds: start / all open / all closed',
            `${int(before.plugin.fds)} / ${int(open.plugin.fds)} / ${int(after.plugin.fds)}`,
          ],
          ['time to close them all and release every fd (s)', closeSeconds.toFixed(1)],
        ]),
      ].join('\n'),
    );
    expect(after.host.fds).toBeLessThanOrEqual(before.host.fds + FD_SLACK);
    expect(after.plugin.fds).toBeLessThanOrEqual(before.plugin.fds + FD_SLACK);
  });
});
