import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import WebSocket from 'ws';

import type { Metrics, ScenarioName, ScenarioParams, TargetEndpoint } from './types';

/**
 * The load scenarios. Every echo is compared byte for byte with what was sent (and must come
 * back as binary, in order); any error, mismatch, unexpected close or stall rejects the scenario.
 */

const TEMPLATE = randomBytes(8192);
const CLOSE_TIMEOUT_MS = 15000;
const IDLE_WARMUP = 100;

/** A unique payload: connection and sequence number, then random bytes. */
export function makePayload(conn: number, seq: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  const offset = (conn * 131 + seq * 17) % (TEMPLATE.length - size);
  TEMPLATE.copy(buf, 0, offset, offset + size);
  if (size >= 8) {
    buf.writeUInt32BE(conn >>> 0, 0);
    buf.writeUInt32BE(seq >>> 0, 4);
  }
  return buf;
}

/** VmRSS of a process in KiB (from /proc/<pid>/status). */
export function readRssKiB(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    throw new Error(`process ${pid} under test is gone`);
  }
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system) a process has used so far, in ms. */
export function processCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    throw new Error(`process ${pid} under test is gone`);
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of /proc/<pid>/stat (utime, stime); `fields` starts at field 3.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Jiffies summed over all CPUs from /proc/stat: user+nice+system, and steal. */
export function systemCpuMs(): { busy: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return { busy: ((f[0] + f[1] + f[2]) * 1000) / CLK_TCK, steal: ((f[7] ?? 0) * 1000) / CLK_TCK };
}

/**
 * Starts measuring CPU use of the load client, the proxy and the upstream; the returned
 * function gives each as a percentage of one core over the elapsed time. A client near 100%
 * means the number is bounded by the client, not by the target.
 */
function cpuMeter(target: TargetEndpoint): () => Metrics {
  const t0 = performance.now();
  const client0 = process.cpuUsage();
  const proxy0 = processCpuMs(target.proxyPid);
  const upstream0 = target.upstreamPid ? processCpuMs(target.upstreamPid) : 0;
  const system0 = systemCpuMs();
  return () => {
    const elapsed = performance.now() - t0;
    const client = process.cpuUsage(client0);
    const system = systemCpuMs();
    const pct = (ms: number): number => (100 * ms) / elapsed;
    const clientMs = (client.user + client.system) / 1000;
    const proxyMs = processCpuMs(target.proxyPid) - proxy0;
    const upstreamMs = target.upstreamPid ? processCpuMs(target.upstreamPid) - upstream0 : 0;
    return {
      clientCpuPct: pct(clientMs),
      proxyCpuPct: pct(proxyMs),
      upstreamCpuPct: target.upstreamPid ? pct(upstreamMs) : NaN,
      // CPU that neither the client nor the servers under test used: other load on the machine.
      otherCpuPct: Math.max(0, pct(system.busy - system0.busy - clientMs - proxyMs - upstreamMs)),
      stealCpuPct: pct(system.steal - system0.steal),
    };
  };
}

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

function sortedCopy(values: number[] | Float64Array): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * One scenario's failure state: the first error wins and every await races against it, so a
 * failure anywhere (including a stall: no progress for `stallMs`) ends the scenario at once.
 */
class Scope {
  public readonly failure: Promise<never>;
  public error: Error | undefined;
  private rejectFailure!: (err: Error) => void;
  private readonly sockets = new Set<WebSocket>();
  private readonly closing = new WeakSet<WebSocket>();
  private lastProgress = performance.now();
  private readonly stallTimer: NodeJS.Timeout;

  public constructor(
    private readonly label: string,
    private readonly stallMs: number,
  ) {
    this.failure = new Promise<never>((_, reject) => {
      this.rejectFailure = reject;
    });
    this.failure.catch(() => undefined);
    this.stallTimer = setInterval(() => {
      const idle = performance.now() - this.lastProgress;
      if (idle > this.stallMs)
        this.fail(`stalled: no progress for ${Math.round(idle)} ms (${this.sockets.size} open)`);
    }, 250);
  }

  public progress(): void {
    this.lastProgress = performance.now();
  }

  public fail(message: string): void {
    if (this.error) return;
    this.error = new Error(`${this.label}: ${message}`);
    this.rejectFailure(this.error);
  }

  public race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.failure]);
  }

  public sleep(ms: number): Promise<void> {
    return this.race(new Promise<void>((resolve) => setTimeout(resolve, ms)));
  }

  /** Opens one client connection; it is watched for errors and unexpected closes once open. */
  public open(target: TargetEndpoint, index: number): Promise<WebSocket> {
    return this.race(
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(target.url, {
          headers: target.headers,
          perMessageDeflate: false,
          // An all-zero masking key lets ws skip masking its own frames, so the load client is
          // not the bottleneck of the bulk scenario (masking 1 MiB frames took most of its CPU).
          // The frames on the wire are still masked frames; every target receives the same bytes.
          generateMask: (mask: Buffer) => mask.fill(0),
          handshakeTimeout: 15000,
          maxPayload: 64 * 1024 * 1024,
        });
        const onError = (err: Error): void =>
          reject(new Error(`${this.label}: handshake #${index} failed: ${err.message}`));
        const onEarlyClose = (code: number, reason: Buffer): void =>
          reject(
            new Error(`${this.label}: connection #${index} closed before open: ${code} ${reason}`),
          );
        ws.once('error', onError);
        ws.once('close', onEarlyClose);
        ws.once('open', () => {
          ws.off('error', onError);
          ws.off('close', onEarlyClose);
          this.sockets.add(ws);
          ws.on('error', (err) => this.fail(`connection #${index}: ${err.message}`));
          ws.on('close', (code, reason) => {
            this.sockets.delete(ws);
            if (!this.closing.has(ws))
              this.fail(`connection #${index} closed unexpectedly: ${code} ${reason.toString()}`);
          });
          this.progress();
          resolve(ws);
        });
      }),
    );
  }

  /** Opens `count` connections, `concurrency` handshakes at a time. */
  public async openMany(
    target: TargetEndpoint,
    count: number,
    concurrency: number,
  ): Promise<WebSocket[]> {
    const sockets: WebSocket[] = new Array<WebSocket>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count && !this.error) {
        const i = next++;
        sockets[i] = await this.open(target, i);
      }
    };
    await this.race(Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker)));
    return sockets;
  }

  /** Close handshake; the echo server answers 1000, anything else is a failure. */
  public close(ws: WebSocket, index: number): Promise<void> {
    this.closing.add(ws);
    return this.race(
      new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => this.fail(`connection #${index}: close handshake not finished in 15 s`),
          CLOSE_TIMEOUT_MS,
        );
        ws.once('close', (code, reason) => {
          clearTimeout(timer);
          if (code !== 1000)
            this.fail(`connection #${index} closed with ${code} ${reason.toString()}, not 1000`);
          this.progress();
          resolve();
        });
        ws.close(1000, 'bench done');
      }),
    );
  }

  public async closeAll(sockets: WebSocket[], concurrency = 500): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < sockets.length && !this.error) {
        const i = next++;
        await this.close(sockets[i], i);
      }
    };
    await this.race(Promise.all(Array.from({ length: concurrency }, worker)));
  }

  public dispose(): void {
    clearInterval(this.stallTimer);
    for (const ws of this.sockets) {
      this.closing.add(ws);
      ws.terminate();
    }
  }
}

function mismatch(expected: Buffer, data: Buffer, isBinary: boolean): string | undefined {
  if (!isBinary) return 'echo came back as text, sent binary';
  if (data.length !== expected.length) return `echo length ${data.length}, sent ${expected.length}`;
  if (!data.equals(expected)) {
    let at = 0;
    while (at < data.length && data[at] === expected[at]) at++;
    return `echo differs from what was sent at byte ${at} of ${data.length}`;
  }
  return undefined;
}

/** Sends one message and resolves with the echo, verified. */
function echoOnce(scope: Scope, ws: WebSocket, payload: Buffer, index: number): Promise<void> {
  return scope.race(
    new Promise<void>((resolve) => {
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        const bad = mismatch(payload, data, isBinary);
        if (bad) scope.fail(`connection #${index}: ${bad}`);
        scope.progress();
        resolve();
      });
      ws.send(payload, { binary: true });
    }),
  );
}

async function latency(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  const ws = await scope.open(target, 0);
  let expected: Buffer | undefined;
  let done: (() => void) | undefined;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const want = expected;
    const resolve = done;
    expected = undefined;
    done = undefined;
    if (!want || !resolve) return scope.fail('echo arrived that was not asked for');
    const bad = mismatch(want, data, isBinary);
    if (bad) return scope.fail(bad);
    resolve();
  });
  const samples = new Float64Array(p.latencyRoundTrips);
  const total = p.latencyWarmup + p.latencyRoundTrips;
  let meter: (() => Metrics) | undefined;
  for (let i = 0; i < total; i++) {
    if (i === p.latencyWarmup) meter = cpuMeter(target);
    const payload = makePayload(0, i, p.messageBytes);
    const echoed = new Promise<void>((resolve) => {
      expected = payload;
      done = resolve;
    });
    const t0 = process.hrtime.bigint();
    ws.send(payload, { binary: true });
    await scope.race(echoed);
    const t1 = process.hrtime.bigint();
    scope.progress();
    if (i >= p.latencyWarmup) samples[i - p.latencyWarmup] = Number(t1 - t0) / 1000;
  }
  const cpu = meter ? meter() : {};
  await scope.close(ws, 0);
  const sorted = sortedCopy(samples);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    maxUs: sorted[sorted.length - 1],
    meanUs: mean,
    roundTrips: sorted.length,
    ...cpu,
  };
}

/**
 * Keeps `inFlight` messages outstanding on every connection for warmup + window seconds and
 * counts the round trips completed inside the window. Echoes must return in send order.
 */
async function pipelined(
  scope: Scope,
  target: TargetEndpoint,
  connections: number,
  inFlight: number,
  seconds: number,
  warmupSeconds: number,
  nextPayload: (conn: number, seq: number) => Buffer,
): Promise<Metrics & { roundTrips: number; seconds: number }> {
  const sockets = await scope.openMany(target, connections, 10);
  let counting = false;
  let stopping = false;
  let counted = 0;
  let total = 0;
  let outstanding = 0;
  let drained: (() => void) | undefined;
  sockets.forEach((ws, conn) => {
    const queue: Buffer[] = [];
    let seq = 0;
    const sendOne = (): void => {
      const payload = nextPayload(conn, seq++);
      queue.push(payload);
      outstanding++;
      ws.send(payload, { binary: true });
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const want = queue.shift();
      if (!want) return scope.fail(`connection #${conn}: echo arrived that was not asked for`);
      const bad = mismatch(want, data, isBinary);
      if (bad) return scope.fail(`connection #${conn}, message ${seq - queue.length - 1}: ${bad}`);
      outstanding--;
      total++;
      if (counting) counted++;
      scope.progress();
      if (!stopping) sendOne();
      else if (outstanding === 0 && drained) drained();
    });
    for (let i = 0; i < inFlight; i++) sendOne();
  });
  await scope.sleep(warmupSeconds * 1000);
  counted = 0;
  counting = true;
  const t0 = performance.now();
  const meter = cpuMeter(target);
  await scope.sleep(seconds * 1000);
  counting = false;
  const t1 = performance.now();
  const cpu = meter();
  stopping = true;
  if (outstanding > 0) await scope.race(new Promise<void>((resolve) => (drained = resolve)));
  await scope.closeAll(sockets, 50);
  return { roundTrips: counted, seconds: (t1 - t0) / 1000, totalRoundTrips: total, ...cpu };
}

async function msgrate(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  const r = await pipelined(
    scope,
    target,
    p.msgrateConnections,
    p.msgrateInFlight,
    p.msgrateSeconds,
    p.warmupSeconds,
    (conn, seq) => makePayload(conn, seq, p.messageBytes),
  );
  return { roundTripsPerSec: r.roundTrips / r.seconds, ...r };
}

async function bulk(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  // Four distinct random buffers per connection, sent in rotation (one in flight).
  const pools = Array.from({ length: p.bulkConnections }, () =>
    Array.from({ length: 4 }, () => randomBytes(p.bulkMessageBytes)),
  );
  const r = await pipelined(
    scope,
    target,
    p.bulkConnections,
    1,
    p.bulkSeconds,
    p.warmupSeconds,
    (conn, seq) => pools[conn][seq % 4],
  );
  return {
    mbPerSec: (r.roundTrips * p.bulkMessageBytes) / 1e6 / r.seconds,
    ...r,
  };
}

async function connect(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  // Warm-up: the same cycles, unmeasured, so that every target is measured with hot code paths.
  await cycleConnections(scope, target, p, p.connectWarmup, [], []);
  const handshakes: number[] = [];
  const cycles: number[] = [];
  const start = performance.now();
  const meter = cpuMeter(target);
  await cycleConnections(scope, target, p, p.connectCount, handshakes, cycles);
  const seconds = (performance.now() - start) / 1000;
  const cpu = meter();
  const hs = sortedCopy(handshakes);
  const cy = sortedCopy(cycles);
  return {
    perSec: p.connectCount / seconds,
    handshakeP50Ms: percentile(hs, 50),
    handshakeP99Ms: percentile(hs, 99),
    cycleP50Ms: percentile(cy, 50),
    cycleP99Ms: percentile(cy, 99),
    connections: p.connectCount,
    ...cpu,
  };
}

/** `count` open/echo/close cycles at `p.connectConcurrency`, timings appended to the arrays. */
async function cycleConnections(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
  count: number,
  handshakes: number[],
  cycles: number[],
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !scope.error) {
      const i = next++;
      const t0 = performance.now();
      const ws = await scope.open(target, i);
      const t1 = performance.now();
      await echoOnce(scope, ws, makePayload(i, 0, p.messageBytes), i);
      await scope.close(ws, i);
      handshakes.push(t1 - t0);
      cycles.push(performance.now() - t0);
    }
  };
  if (count <= 0) return;
  await scope.race(
    Promise.all(Array.from({ length: Math.min(p.connectConcurrency, count) }, worker)),
  );
}

async function idle(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  // Warm-up (code paths, lazily allocated buffers) so that "before" is a process that has
  // handled connections, then let it settle.
  const warm = await scope.openMany(target, IDLE_WARMUP, 20);
  for (let i = 0; i < warm.length; i++)
    await echoOnce(scope, warm[i], makePayload(i, 0, p.messageBytes), i);
  await scope.closeAll(warm, 20);
  await scope.sleep(1000);
  const before = readRssKiB(target.proxyPid);
  const upstreamBefore = target.upstreamPid ? readRssKiB(target.upstreamPid) : NaN;
  const sockets = await scope.openMany(target, p.idleConnections, 50);
  // Settle, then read RSS every 500 ms until four readings in a row agree within 1% (up to
  // 10 s more); the last reading counts.
  await scope.sleep(p.idleSettleMs);
  const readings: number[] = [readRssKiB(target.proxyPid)];
  const settleUntil = performance.now() + 10000;
  for (;;) {
    const last4 = readings.slice(-4);
    const stable = last4.length === 4 && Math.max(...last4) - Math.min(...last4) <= last4[3] * 0.01;
    if (stable || performance.now() > settleUntil) break;
    await scope.sleep(500);
    readings.push(readRssKiB(target.proxyPid));
    scope.progress();
  }
  const after = readings[readings.length - 1];
  const upstreamAfter = target.upstreamPid ? readRssKiB(target.upstreamPid) : NaN;
  // Every connection must still echo.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sockets.length && !scope.error) {
      const i = next++;
      await echoOnce(scope, sockets[i], makePayload(i, 1, p.messageBytes), i);
    }
  };
  await scope.race(Promise.all(Array.from({ length: 200 }, worker)));
  await scope.closeAll(sockets, 200);
  const n = p.idleConnections;
  return {
    kibPerConn: (after - before) / n,
    connections: n,
    rssBeforeKiB: before,
    rssAfterKiB: after,
    rssReadings: readings.length,
    rssReadingsSpreadKiB: Math.max(...readings) - Math.min(...readings),
    upstreamKibPerConn: (upstreamAfter - upstreamBefore) / n,
  };
}

/** A few open / echo / close cycles: fails fast with the real reason (HTTP status, close code). */
async function preflight(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
): Promise<Metrics> {
  return connect(scope, target, { ...p, connectCount: 3, connectConcurrency: 1 });
}

const RUNNERS: Record<
  ScenarioName | 'preflight',
  (scope: Scope, target: TargetEndpoint, p: ScenarioParams) => Promise<Metrics>
> = { latency, msgrate, bulk, connect, idle, preflight };

export async function runScenario(
  scenario: ScenarioName | 'preflight',
  target: TargetEndpoint,
  params: ScenarioParams,
): Promise<Metrics> {
  const scope = new Scope(`${scenario} via ${target.name}`, params.stallMs);
  try {
    const metrics = await scope.race(RUNNERS[scenario](scope, target, params));
    if (scope.error) throw scope.error;
    return metrics;
  } finally {
    scope.dispose();
  }
}
