import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import WebSocket from 'ws';

import { mintToken } from '../scripts/lib/token-minter';
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
 * function gives each as a percentage of one core over the elapsed time, and the proxy's and
 * upstream's CPU time in ms (for CPU per handshake or per round trip). A client near 100%
 * means the number is bounded by the client, not by the target. The proxy is one process:
 * nginx's worker, Portico's main process without its plugin child, the echo server for direct.
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
      proxyCpuMs: proxyMs,
      upstreamCpuMs: target.upstreamPid ? upstreamMs : NaN,
      windowMs: elapsed,
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

/** Per-connection choices a scenario makes beyond the target's defaults. */
interface OpenOptions {
  /** Replaces the target's headers (a distinct token, say). */
  headers?: Record<string, string>;
  /** Loopback source address to connect from (127.0.0.2, ...). */
  localAddress?: string;
}

/**
 * The `k`-th loopback source address: 127.0.0.2, 127.0.0.3, ... 127.0.0.254, 127.0.1.2, ...
 * Linux routes all of 127.0.0.0/8 to the loopback interface, so these need no setup. Spreading
 * clients over addresses keeps them clear of port exhaustion (a socket bound before connecting
 * gets its port per source address), and lets a storm look like many clients rather than one
 * address holding thousands of connections at once (which Portico caps, see
 * MAX_HEADER_PHASE_CONNECTIONS_PER_IP).
 */
export function sourceAddress(k: number): string {
  const host = 2 + (k % 253);
  const rest = Math.floor(k / 253);
  return `127.${Math.floor(rest / 256) % 256}.${rest % 256}.${host}`;
}

/**
 * `count` Authorization headers, each with a token never presented before (a random prefix in
 * `sub` per call), signed with the target's secret, or with a throwaway one for targets that
 * check none (direct, nginx) so that every target receives requests of the same size.
 */
function distinctTokenHeaders(target: TargetEndpoint, count: number): Record<string, string>[] {
  const secret = target.jwtSecret ?? randomBytes(36).toString('base64url');
  const batch = randomBytes(6).toString('hex');
  return Array.from({ length: count }, (_, i) => {
    const sub = `bench-${batch}-${i}`;
    const token = mintToken(secret, { sub, roles: [], expiresInSeconds: 6 * 3600 });
    return { ...target.headers, Authorization: `Bearer ${token}` };
  });
}

/**
 * One scenario's failure state: the first error wins and every await races against it, so a
 * failure anywhere (including a stall: no progress for `stallMs`) ends the scenario at once.
 */
class Scope {
  public readonly failure: Promise<never>;
  public error: Error | undefined;
  /** Said next to the numbers: what failed and why, when a scenario counts failures. */
  public readonly notes: string[] = [];
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
  public open(
    target: TargetEndpoint,
    index: number,
    options: OpenOptions = {},
  ): Promise<WebSocket> {
    return this.race(
      new Promise<WebSocket>((resolve, reject) => {
        const ws = newClient(target, options, 15000);
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

  /**
   * Opens `count` connections, `concurrency` handshakes at a time, numbered from `first`, each
   * with the options `optionsOf` gives its number.
   */
  public async openMany(
    target: TargetEndpoint,
    count: number,
    concurrency: number,
    optionsOf: (index: number) => OpenOptions = () => ({}),
    first = 0,
  ): Promise<WebSocket[]> {
    const sockets: WebSocket[] = new Array<WebSocket>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count && !this.error) {
        const i = next++;
        sockets[i] = await this.open(target, first + i, optionsOf(first + i));
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

/** A load-client WebSocket to `target` (not yet open). */
function newClient(
  target: TargetEndpoint,
  options: OpenOptions,
  handshakeTimeoutMs: number,
): WebSocket {
  return new WebSocket(target.url, {
    headers: options.headers ?? target.headers,
    ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
    perMessageDeflate: false,
    // An all-zero masking key lets ws skip masking its own frames, so the load client is
    // not the bottleneck of the bulk scenario (masking 1 MiB frames took most of its CPU).
    // The frames on the wire are still masked frames; every target receives the same bytes.
    generateMask: (mask: Buffer) => mask.fill(0),
    handshakeTimeout: handshakeTimeoutMs,
    maxPayload: 64 * 1024 * 1024,
  });
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

/** Every cycle presents the target's one token (as a reconnecting browser tab does). */
function connect(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  return connectCycles(scope, target, p, () => ({}));
}

/**
 * Every cycle presents a token never seen before (minted before the measured window), so a
 * proxy that verifies tokens pays the full signature check each time, as in a storm of
 * reconnects from many users.
 */
function connectDistinct(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
): Promise<Metrics> {
  const headers = distinctTokenHeaders(target, p.connectWarmup + p.connectCount);
  return connectCycles(scope, target, p, (i) => ({ headers: headers[i] }));
}

/**
 * `p.connectWarmup` unmeasured cycles, then `p.connectCount` measured ones; cycle `i` (counted
 * over both) opens with `optionsOf(i)`. CPU per handshake is the process's CPU time over the
 * window divided by the cycles, each a handshake, one echo and a close.
 */
async function connectCycles(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
  optionsOf: (index: number) => OpenOptions,
): Promise<Metrics> {
  // Warm-up: the same cycles, unmeasured, so that every target is measured with hot code paths.
  await cycleConnections(scope, target, p, 0, p.connectWarmup, [], [], optionsOf);
  const handshakes: number[] = [];
  const cycles: number[] = [];
  const start = performance.now();
  const meter = cpuMeter(target);
  await cycleConnections(
    scope,
    target,
    p,
    p.connectWarmup,
    p.connectCount,
    handshakes,
    cycles,
    optionsOf,
  );
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
    proxyCpuUsPerHandshake: (cpu.proxyCpuMs * 1000) / p.connectCount,
    upstreamCpuUsPerHandshake: (cpu.upstreamCpuMs * 1000) / p.connectCount,
    ...cpu,
  };
}

/**
 * `count` open/echo/close cycles numbered from `first` at `p.connectConcurrency`, timings
 * appended to the arrays.
 */
async function cycleConnections(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
  first: number,
  count: number,
  handshakes: number[],
  cycles: number[],
  optionsOf: (index: number) => OpenOptions,
): Promise<void> {
  let next = first;
  const end = first + count;
  const worker = async (): Promise<void> => {
    while (next < end && !scope.error) {
      const i = next++;
      const t0 = performance.now();
      const ws = await scope.open(target, i, optionsOf(i));
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

/**
 * `p.rateConnections` connections, each sending one message every 1000/`perConnection` ms,
 * spread evenly: connection i sends at i/R, i/R + N/R, ... (R the total rate), so the target
 * sees a steady stream of single small messages on different connections, nothing to batch.
 * Open loop: a send does not wait for the previous echo, so a slow target shows as latency.
 * Over the measured window: round trips completed, latency of the messages sent in it, and the
 * proxy's CPU time per round trip.
 */
async function fixedRate(
  scope: Scope,
  target: TargetEndpoint,
  p: ScenarioParams,
  perConnection: number,
): Promise<Metrics> {
  const n = p.rateConnections;
  const totalRate = n * perConnection; // messages per second
  const sockets = await scope.openMany(target, n, 50);
  const queues: { payload: Buffer; sentAt: number }[][] = sockets.map(() => []);
  const seqs = new Uint32Array(n);
  const latencies = new Float64Array(Math.ceil(totalRate * (p.rateSeconds + 1) * 1.2) + 1000);
  let latencyCount = 0;
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let completedInWindow = 0;
  let sentInWindow = 0;
  let outstanding = 0;
  let drained: (() => void) | undefined;
  sockets.forEach((ws, conn) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const now = performance.now();
      const sent = queues[conn].shift();
      if (!sent) return scope.fail(`connection #${conn}: echo arrived that was not asked for`);
      const bad = mismatch(sent.payload, data, isBinary);
      if (bad) return scope.fail(`connection #${conn}: ${bad}`);
      outstanding--;
      if (now >= windowStart && now < windowEnd) completedInWindow++;
      if (sent.sentAt >= windowStart && sent.sentAt < windowEnd && latencyCount < latencies.length)
        latencies[latencyCount++] = now - sent.sentAt;
      scope.progress();
      if (outstanding === 0 && drained) drained();
    });
  });
  const t0 = performance.now();
  let sent = 0;
  let stopped = false;
  // A 1 ms timer sends whatever is due by now: about totalRate/1000 messages per tick, each on
  // a different connection (a timer per connection would cost the client more than the target).
  const ticker = setInterval(() => {
    if (stopped) return;
    const now = performance.now();
    const due = Math.floor(((now - t0) * totalRate) / 1000);
    while (sent < due) {
      const conn = sent % n;
      const payload = makePayload(conn, seqs[conn]++, p.messageBytes);
      queues[conn].push({ payload, sentAt: now });
      outstanding++;
      if (now >= windowStart && now < windowEnd) sentInWindow++;
      sockets[conn].send(payload, { binary: true });
      sent++;
    }
  }, 1);
  try {
    await scope.sleep(p.rateWarmupSeconds * 1000);
    windowStart = performance.now();
    const meter = cpuMeter(target);
    await scope.sleep(p.rateSeconds * 1000);
    windowEnd = performance.now();
    const cpu = meter();
    stopped = true;
    if (outstanding > 0) await scope.race(new Promise<void>((resolve) => (drained = resolve)));
    await scope.closeAll(sockets, 50);
    const seconds = (windowEnd - windowStart) / 1000;
    const lat = sortedCopy(latencies.subarray(0, latencyCount));
    return {
      targetPerSec: totalRate,
      sentPerSec: sentInWindow / seconds,
      roundTripsPerSec: completedInWindow / seconds,
      roundTrips: completedInWindow,
      seconds,
      latencyP50Ms: percentile(lat, 50),
      latencyP99Ms: percentile(lat, 99),
      latencyMaxMs: lat.length > 0 ? lat[lat.length - 1] : NaN,
      proxyCpuUsPerRoundTrip: (cpu.proxyCpuMs * 1000) / completedInWindow,
      upstreamCpuUsPerRoundTrip: (cpu.upstreamCpuMs * 1000) / completedInWindow,
      ...cpu,
    };
  } finally {
    stopped = true;
    clearInterval(ticker);
  }
}

function rate5(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  return fixedRate(scope, target, p, 5);
}

function rate10(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  return fixedRate(scope, target, p, 10);
}

// ---------------------------------------------------------------------------------------------
// Storm

/** Kernel TCP counters reported as deltas over a storm (machine-wide: /proc/net/netstat, snmp). */
export const KERNEL_COUNTERS = [
  ['TcpExt', 'ListenOverflows'],
  ['TcpExt', 'ListenDrops'],
  ['TcpExt', 'TCPSynRetrans'],
  ['TcpExt', 'TCPReqQFullDrop'],
  ['TcpExt', 'TCPReqQFullDoCookies'],
  ['TcpExt', 'SyncookiesSent'],
  ['TcpExt', 'TCPTimeouts'],
  ['TcpExt', 'TCPAbortOnData'],
  ['TcpExt', 'TCPAbortOnClose'],
  ['Tcp', 'RetransSegs'],
  ['Tcp', 'AttemptFails'],
  ['Tcp', 'EstabResets'],
  ['Tcp', 'OutRsts'],
] as const;

/** Every counter of /proc/net/netstat and /proc/net/snmp, as "TcpExt.ListenOverflows" → value. */
function readKernelCounters(): Map<string, number> {
  const out = new Map<string, number>();
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const lines = text.trim().split('\n');
    // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: 1 2 ...".
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i].split(/\s+/);
      const values = lines[i + 1].split(/\s+/);
      const group = names[0].replace(/:$/, '');
      for (let j = 1; j < names.length; j++) out.set(`${group}.${names[j]}`, Number(values[j]));
    }
  }
  return out;
}

/** The deltas of KERNEL_COUNTERS between two readings (NaN where the kernel has no such one). */
function kernelDeltas(before: Map<string, number>, after: Map<string, number>): Metrics {
  const out: Metrics = {};
  for (const [group, name] of KERNEL_COUNTERS) {
    const key = `${group}.${name}`;
    const a = before.get(key);
    const b = after.get(key);
    out[`kernel${name}`] = a === undefined || b === undefined ? NaN : b - a;
  }
  return out;
}

/**
 * Samples the accept queues of the listeners on `ports` every 250 ms with `ss` (Recv-Q of a
 * listening socket: connections the kernel completed that the process has not accepted yet;
 * Send-Q: its backlog). Reports the longest queue seen, the backlog, and how long it was full.
 */
function acceptQueueSampler(ports: number[]): () => Metrics {
  const stats = ports.map(() => ({ max: 0, backlog: NaN, fullSamples: 0 }));
  let busy = false;
  let samples = 0;
  const filter = `( ${ports.map((port) => `sport = :${port}`).join(' or ')} )`;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    execFile('ss', ['-ltnH', filter], { timeout: 2000 }, (err, stdout) => {
      busy = false;
      if (err) return;
      samples++;
      for (const line of stdout.trim().split('\n')) {
        // State Recv-Q Send-Q Local:Port Peer:Port
        const cols = line.trim().split(/\s+/);
        if (cols.length < 4) continue;
        const port = Number(cols[3].slice(cols[3].lastIndexOf(':') + 1));
        const at = ports.indexOf(port);
        if (at === -1) continue;
        const queued = Number(cols[1]);
        const backlog = Number(cols[2]);
        const s = stats[at];
        s.max = Math.max(s.max, queued);
        s.backlog = backlog;
        // The kernel drops once the queue exceeds the backlog; count "at the backlog" as full.
        if (queued >= backlog) s.fullSamples++;
      }
    });
  }, 250);
  return () => {
    clearInterval(timer);
    const names = ['listener', 'upstreamListener'];
    const out: Metrics = { acceptQueueSamples: samples };
    stats.forEach((s, i) => {
      out[`${names[i]}AcceptQueueMax`] = s.max;
      out[`${names[i]}Backlog`] = s.backlog;
      out[`${names[i]}AcceptQueueFullSeconds`] = s.fullSamples * 0.25;
    });
    return out;
  };
}

/** How a storm client ended. */
enum Outcome {
  Pending = 0,
  Echoed,
  Refused,
  Reset,
  HttpStatus,
  TimedOut,
  ClosedEarly,
  BadEcho,
  Other,
}

type Failure = Exclude<Outcome, Outcome.Pending | Outcome.Echoed>;

/** How each failure reads in the notes. */
const FAILURE_LABELS: Record<Failure, string> = {
  [Outcome.Refused]: 'refused',
  [Outcome.Reset]: 'reset',
  [Outcome.HttpStatus]: 'HTTP status instead of 101',
  [Outcome.TimedOut]: 'timed out',
  [Outcome.ClosedEarly]: 'closed before its echo',
  [Outcome.BadEcho]: 'wrong echo',
  [Outcome.Other]: 'other error',
};

/** The metric counting each failure. */
const FAILURE_NAMES: Record<Failure, string> = {
  [Outcome.Refused]: 'failedRefused',
  [Outcome.Reset]: 'failedReset',
  [Outcome.HttpStatus]: 'failedHttpStatus',
  [Outcome.TimedOut]: 'failedTimedOut',
  [Outcome.ClosedEarly]: 'failedClosedEarly',
  [Outcome.BadEcho]: 'failedBadEcho',
  [Outcome.Other]: 'failedOther',
};

function classify(err: Error & { code?: string }): Failure {
  if (err.code === 'ECONNREFUSED') return Outcome.Refused;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || /socket hang up/.test(err.message))
    return Outcome.Reset;
  if (/^Unexpected server response/.test(err.message)) return Outcome.HttpStatus;
  if (err.code === 'ETIMEDOUT' || /timed out/.test(err.message)) return Outcome.TimedOut;
  return Outcome.Other;
}

/**
 * A reconnect storm, as when a drained pod's clients all come back at once: `p.stormClients`
 * clients (each with a token never seen before, from `p.stormClientsPerAddress` per loopback
 * source address) start connecting in the same synchronous loop; each sends one message on open,
 * waits for its echo and stays open until every client is done. A client that has not had its
 * echo `p.stormTimeoutMs` after the start gives up. Failures are counted by kind, not fatal.
 */
async function storm(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  const n = p.stormClients;
  const headers = distinctTokenHeaders(target, n);
  const payloads = Array.from({ length: n }, (_, i) => makePayload(i, 0, p.messageBytes));
  const addresses = Array.from({ length: n }, (_, i) =>
    sourceAddress(Math.floor(i / p.stormClientsPerAddress)),
  );
  const outcome = new Uint8Array(n);
  const echoAt = new Float64Array(n).fill(NaN);
  const sockets = new Array<WebSocket | undefined>(n);
  const reasons = new Map<string, number>();
  let pending = n;
  // Clients that had their echo but were closed by the other side before the storm was over.
  let droppedAfterEcho = 0;
  let closingAll = false;
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  let t0 = 0;
  const finish = (i: number, how: Failure | Outcome.Echoed, detail?: string): void => {
    if (outcome[i] !== Outcome.Pending) return;
    outcome[i] = how;
    if (how === Outcome.Echoed) echoAt[i] = performance.now() - t0;
    else {
      const key = `${FAILURE_LABELS[how]} (${detail ?? 'no detail'})`;
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    scope.progress();
    if (--pending === 0) allDone();
  };
  const ports = [Number(new URL(target.url).port)];
  if (target.upstreamPort !== undefined) ports.push(target.upstreamPort);
  const counters0 = readKernelCounters();
  const stopSampler = acceptQueueSampler(ports);
  const meter = cpuMeter(target);
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let opened = false;
    // Our own deadline ends it first; ws's handshake timeout is only a backstop.
    const ws = newClient(
      target,
      { headers: headers[i], localAddress: addresses[i] },
      p.stormTimeoutMs + 5000,
    );
    sockets[i] = ws;
    ws.on('error', (err: Error & { code?: string }) => {
      const how = opened ? Outcome.Reset : classify(err);
      finish(i, how, `${err.code ?? ''} ${err.message}`.trim());
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (outcome[i] === Outcome.Echoed && !closingAll) droppedAfterEcho++;
      finish(
        i,
        Outcome.ClosedEarly,
        `closed ${opened ? 'after' : 'before'} open: ${code} ${reason.toString()}`.trim(),
      );
    });
    ws.once('open', () => {
      opened = true;
      ws.send(payloads[i], { binary: true });
    });
    ws.once('message', (data: Buffer, isBinary: boolean) => {
      const bad = mismatch(payloads[i], data, isBinary);
      finish(i, bad ? Outcome.BadEcho : Outcome.Echoed, bad);
    });
  }
  const created = performance.now() - t0;
  const deadline = setTimeout(
    () => {
      for (let i = 0; i < n; i++) {
        if (outcome[i] !== Outcome.Pending) continue;
        const state = sockets[i]?.readyState === WebSocket.OPEN ? 'open, no echo' : 'not open';
        finish(i, Outcome.TimedOut, `no echo after ${p.stormTimeoutMs / 1000} s (${state})`);
        sockets[i]?.terminate();
      }
    },
    Math.max(0, p.stormTimeoutMs - created),
  );
  let queues: Metrics | undefined;
  try {
    await scope.race(done);
  } finally {
    clearTimeout(deadline);
    queues = stopSampler();
    // On a failure of the scenario itself (the stall limit), no client may stay behind.
    if (scope.error) for (const ws of sockets) ws?.terminate();
  }
  const elapsed = performance.now() - t0;
  const cpu = meter();
  const kernel = kernelDeltas(counters0, readKernelCounters());
  // Close every client still open (close handshake, 500 at a time); a close that goes wrong
  // now is counted, not a storm failure.
  let closeProblems = 0;
  closingAll = true;
  const open = sockets.filter((ws): ws is WebSocket => ws?.readyState === WebSocket.OPEN);
  let next = 0;
  const closer = async (): Promise<void> => {
    while (next < open.length && !scope.error) {
      const ws = open[next++];
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          closeProblems++;
          ws.terminate();
          resolve();
        }, CLOSE_TIMEOUT_MS);
        ws.once('close', (code) => {
          clearTimeout(timer);
          if (code !== 1000) closeProblems++;
          scope.progress();
          resolve();
        });
        ws.close(1000, 'bench done');
      });
    }
  };
  try {
    await scope.race(Promise.all(Array.from({ length: 500 }, closer)));
  } finally {
    for (const ws of sockets) if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }

  const counts: Metrics = {};
  for (const name of Object.values(FAILURE_NAMES)) counts[name] = 0;
  for (let i = 0; i < n; i++) {
    const how = outcome[i] as Outcome;
    if (how !== Outcome.Echoed && how !== Outcome.Pending) counts[FAILURE_NAMES[how as Failure]]++;
  }
  const echoed = echoAt.filter((t) => !Number.isNaN(t));
  const times = sortedCopy(echoed);
  const failures = n - echoed.length;
  if (droppedAfterEcho > 0)
    scope.notes.push(
      `${droppedAfterEcho} storm clients were closed by the target after their echo`,
    );
  if (failures > 0) {
    const top = [...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
    scope.notes.push(
      `${failures} of ${n} storm clients failed: ` +
        top.map(([reason, count]) => `${count}× ${reason}`).join('; '),
    );
  }
  return {
    clients: n,
    sourceAddresses: Math.ceil(n / p.stormClientsPerAddress),
    echoed: echoed.length,
    failures,
    ...counts,
    // Time from the first connect to the last echo (of the clients that got one).
    stormSeconds: times.length > 0 ? times[times.length - 1] / 1000 : NaN,
    // Until every client had its echo or gave up.
    allDoneSeconds: elapsed / 1000,
    echoP50Seconds: percentile(times, 50) / 1000,
    echoP90Seconds: percentile(times, 90) / 1000,
    echoP99Seconds: percentile(times, 99) / 1000,
    clientsCreatedMs: created,
    closeProblems,
    droppedAfterEcho,
    proxyCpuUsPerClient: (cpu.proxyCpuMs * 1000) / n,
    upstreamCpuUsPerClient: (cpu.upstreamCpuMs * 1000) / n,
    ...kernel,
    ...queues,
    ...cpu,
  };
}

/**
 * Where the idle scenario reads RSS on its way up: 1,000, 2,500, 5,000 (10,000 and 25,000 when
 * there are more) and all connections.
 */
export function idleCheckpoints(total: number): number[] {
  return [...[1000, 2500, 5000, 10000, 25000].filter((c) => c < total), total];
}

/**
 * VmRSS of `pid` once it has settled: after `settleMs`, readings every 500 ms until four in a
 * row agree within 1% (at most `maxMoreMs` more); the last reading counts.
 */
async function settledRssKiB(
  scope: Scope,
  pid: number,
  settleMs: number,
  maxMoreMs: number,
): Promise<{ kib: number; readings: number[] }> {
  await scope.sleep(settleMs);
  const readings: number[] = [readRssKiB(pid)];
  const settleUntil = performance.now() + maxMoreMs;
  for (;;) {
    const last4 = readings.slice(-4);
    const stable = last4.length === 4 && Math.max(...last4) - Math.min(...last4) <= last4[3] * 0.01;
    if (stable || performance.now() > settleUntil) break;
    await scope.sleep(500);
    readings.push(readRssKiB(pid));
    scope.progress();
  }
  return { kib: readings[readings.length - 1], readings };
}

async function idle(scope: Scope, target: TargetEndpoint, p: ScenarioParams): Promise<Metrics> {
  // A fresh process, before it has seen any connection.
  const start = readRssKiB(target.proxyPid);
  // Warm-up (code paths, lazily allocated buffers) so that "before" is a process that has
  // handled connections, then let it settle: that is the RSS "at rest".
  const warm = await scope.openMany(target, IDLE_WARMUP, 20);
  for (let i = 0; i < warm.length; i++)
    await echoOnce(scope, warm[i], makePayload(i, 0, p.messageBytes), i);
  await scope.closeAll(warm, 20);
  await scope.sleep(1000);
  const before = readRssKiB(target.proxyPid);
  const upstreamBefore = target.upstreamPid ? readRssKiB(target.upstreamPid) : NaN;
  // Open the connections in steps and read RSS at each checkpoint, so the report shows whether
  // a connection costs the same from the first thousand on. A thousand per source address
  // keeps the client clear of port exhaustion however many there are.
  const fromAddress = (i: number): OpenOptions => ({
    localAddress: sourceAddress(Math.floor(i / 1000)),
  });
  const checkpoints = idleCheckpoints(p.idleConnections);
  const sockets: WebSocket[] = [];
  const steps: Metrics = {};
  let readings: number[] = [];
  let previousRss = before;
  let after = before;
  for (const [k, checkpoint] of checkpoints.entries()) {
    const last = k === checkpoints.length - 1;
    const opened = sockets.length;
    sockets.push(...(await scope.openMany(target, checkpoint - opened, 50, fromAddress, opened)));
    // Intermediate checkpoints settle for less time than the final one.
    const settled = await settledRssKiB(
      scope,
      target.proxyPid,
      last ? p.idleSettleMs : Math.min(p.idleSettleMs, 1000),
      last ? 10000 : 5000,
    );
    after = settled.kib;
    readings = settled.readings;
    steps[`step${k + 1}Connections`] = checkpoint;
    steps[`step${k + 1}RssKiB`] = settled.kib;
    steps[`step${k + 1}KibPerConn`] = (settled.kib - previousRss) / (checkpoint - opened);
    previousRss = settled.kib;
  }
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
  const kibPerConn = (after - before) / n;
  const stepCosts = checkpoints.map((_, k) => steps[`step${k + 1}KibPerConn`]);
  return {
    kibPerConn,
    connections: n,
    rssStartMiB: start / 1024,
    rssRestMiB: before / 1024,
    rssBeforeKiB: before,
    rssAfterKiB: after,
    rssReadings: readings.length,
    rssReadingsSpreadKiB: Math.max(...readings) - Math.min(...readings),
    upstreamKibPerConn: (upstreamAfter - upstreamBefore) / n,
    steps: checkpoints.length,
    ...steps,
    // 1.0 when every step costs the same per connection; the dearest step over the average.
    idleFlatness: kibPerConn > 0 ? Math.max(...stepCosts) / kibPerConn : NaN,
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
> = {
  latency,
  msgrate,
  bulk,
  connect,
  'connect-distinct': connectDistinct,
  rate5,
  rate10,
  storm,
  idle,
  preflight,
};

export async function runScenario(
  scenario: ScenarioName | 'preflight',
  target: TargetEndpoint,
  params: ScenarioParams,
): Promise<{ metrics: Metrics; notes: string[] }> {
  // A storm may legitimately go quiet for longer than the stall limit (SYN retransmits after
  // 1, 3, 7, 15 s ...); its clients' own deadline bounds it instead.
  const stallMs =
    scenario === 'storm' ? Math.max(params.stallMs, params.stormTimeoutMs + 20000) : params.stallMs;
  const scope = new Scope(`${scenario} via ${target.name}`, stallMs);
  try {
    const metrics = await scope.race(RUNNERS[scenario](scope, target, params));
    if (scope.error) throw scope.error;
    return { metrics, notes: scope.notes };
  } finally {
    scope.dispose();
  }
}
