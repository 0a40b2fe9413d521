import { startPorticoProcess } from '../helpers/portico-process';
import type { PorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';
import {
  closed,
  command,
  figures,
  int,
  machine,
  MiB,
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
import type { ProcessFigures } from './soak-support';

const SIZES = {
  SOAK_CYCLES: soakSize('SOAK_CYCLES', 2000),
  SOAK_CYCLE_CONCURRENCY: soakSize('SOAK_CYCLE_CONCURRENCY', 8),
  SOAK_MAX_RSS_GROWTH_MIB: soakSize('SOAK_MAX_RSS_GROWTH_MIB', 64),
};
const CYCLES = SIZES.SOAK_CYCLES;
/** Cycles run before the "start" figures are taken, so lazy initialisation isn't counted. */
const WARMUP = Math.min(1000, Math.floor(CYCLES / 10));
const FD_SLACK = 8;
/** RSS samples over the measured cycles; a fifth of them at each end give the floors compared. */
const SAMPLES = 50;
const FIFTH = SAMPLES / 5;

describe('soak: connect / echo / close cycles', () => {
  let host: PorticoProcess | undefined;

  beforeAll(async () => {
    host = await startPorticoProcess(PLUGINS_DIR);
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  it(`${CYCLES} connect/echo/close cycles → every one echoes, fds back to the start, RSS floor growth bounded`, async () => {
    if (host === undefined) throw new Error('host did not start');
    const h = host;
    const echoPid = await waitFor(() => pluginPid(h.pid, 'echo'), 30_000, 'the echo plugin');
    const url = `${h.wsUrl}/plugin-ws/echo`;
    const token = h.token();
    let failed = 0;
    let firstFailure = '';

    const cycle = async (i: number): Promise<void> => {
      try {
        const ws = await openSocket(url, token);
        const answer = new Promise<string>((resolveAnswer, reject) => {
          ws.once('message', (data: Buffer) => resolveAnswer(data.toString()));
          ws.once('close', (code: number) => reject(new Error(`closed with ${code} before echo`)));
        });
        ws.send(`cycle-${i}`);
        const echoed = await answer;
        if (echoed !== `cycle-${i}`) throw new Error(`cycle ${i} got ${echoed.slice(0, 40)}`);
        ws.removeAllListeners('close');
        const done = closed(ws);
        ws.close(1000);
        const code = await done;
        if (code !== 1000) throw new Error(`cycle ${i} closed with ${code}`);
      } catch (err) {
        failed += 1;
        firstFailure ||= String(err);
      }
    };

    const settled = async (): Promise<{ host: ProcessFigures; plugin: ProcessFigures }> => {
      await waitFor(async () => (await wsConnections(h, 'echo')) === 0, 60_000, 'gauge at 0');
      return { host: figures(h.pid), plugin: figures(echoPid) };
    };

    const initial = await settled();
    await pooled(WARMUP, SIZES.SOAK_CYCLE_CONCURRENCY, cycle);
    const start = await settled();

    const measured = CYCLES - WARMUP;
    const samples: { done: number; rss: number }[] = [{ done: WARMUP, rss: start.host.rss }];
    let done = 0;
    const started = Date.now();
    await pooled(measured, SIZES.SOAK_CYCLE_CONCURRENCY, async (i) => {
      await cycle(WARMUP + i);
      done += 1;
      if (done % Math.max(1, Math.floor(measured / SAMPLES)) === 0)
        samples.push({ done: WARMUP + done, rss: figures(h.pid).rss });
    });
    const seconds = (Date.now() - started) / 1000;
    const end = await settled();
    const hostFdsEnd = await waitFor(
      () => {
        const fds = figures(h.pid).fds;
        return fds <= start.host.fds + FD_SLACK ? fds : undefined;
      },
      60_000,
      'host fds back to the start',
    ).catch(() => figures(h.pid).fds);

    // The host's heap grows in a sawtooth (V8 collects late, see README › Performance), so a
    // single reading can sit on a peak: a leak shows as a rising floor.
    const floor = (from: number, to: number): number =>
      Math.min(...samples.slice(from, to).map((s) => s.rss));
    const floorGrowth = floor(-FIFTH, samples.length) - floor(0, FIFTH + 1);
    const growth = end.host.rss - start.host.rss;
    report(
      'cycles',
      [
        `Command: \`${command(SIZES, 'connect-cycles')}\`  `,
        `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine(h.pid)}.`,
        '',
        table([
          ['cycles (connect, echo one message, close 1000)', int(CYCLES)],
          ['… of which warm-up, before the start figures', int(WARMUP)],
          ['failed cycles', int(failed)],
          [
            'time for the measured cycles (s)',
            `${seconds.toFixed(1)} (${int(measured / seconds)}/s)`,
          ],
          [
            'host RSS: before warm-up / start / end (MiB)',
            `${mib(initial.host.rss)} / ${mib(start.host.rss)} / ${mib(end.host.rss)}`,
          ],
          ['host RSS growth, start → end (MiB)', mib(growth)],
          [
            'host RSS every 10% of the cycles (MiB)',
            samples
              .filter((_, i) => i % (SAMPLES / 10) === 0)
              .map((s) => mib(s.rss))
              .join(', '),
          ],
          [
            `host RSS floor (lowest of ${FIFTH} samples) in each fifth of the cycles (MiB)`,
            [0, 1, 2, 3, 4]
              .map((k) => mib(floor(k * FIFTH + (k === 0 ? 0 : 1), (k + 1) * FIFTH + 1)))
              .join(', '),
          ],
          ['host RSS floor growth, first → last fifth (MiB)', mib(floorGrowth)],
          [
            'host open fds: before warm-up / start / end',
            `${int(initial.host.fds)} / ${int(start.host.fds)} / ${int(hostFdsEnd)}`,
          ],
          [
            'echo plugin RSS: start / end (MiB)',
            `${mib(start.plugin.rss)} / ${mib(end.plugin.rss)}`,
          ],
          [
            'echo plugin open fds: start / end',
            `${int(start.plugin.fds)} / ${int(end.plugin.fds)}`,
          ],
        ]),
      ].join('\n'),
    );
    expect({ failed, firstFailure }).toEqual({ failed: 0, firstFailure: '' });
    expect(hostFdsEnd).toBeLessThanOrEqual(start.host.fds + FD_SLACK);
    expect(end.plugin.fds).toBeLessThanOrEqual(start.plugin.fds + FD_SLACK);
    expect(floorGrowth).toBeLessThanOrEqual(SIZES.SOAK_MAX_RSS_GROWTH_MIB * MiB);
  });
});
