import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { getHeapStatistics } from 'node:v8';

import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';

import { PorticoMetrics } from '../metrics/portico-metrics';
import { readOpenFileLimit } from './open-file-limit';

/** How often the limits are checked (listing /proc/self/fd: ~1 ms per 10,000 descriptors). */
const CHECK_INTERVAL_MS = 5_000;
/** Share of a limit at which Portico warns, and below which it says the pressure is over. */
export const WARN_AT = 0.8;
export const CLEAR_BELOW = 0.7;

/** Whether to warn, clear, or stay quiet, given the last state and the current share. */
export function capacityTransition(warned: boolean, ratio: number): 'warn' | 'clear' | 'none' {
  if (!warned && ratio >= WARN_AT) return 'warn';
  if (warned && ratio < CLEAR_BELOW) return 'clear';
  return 'none';
}

/** One reading of a limited resource. */
export interface Usage {
  readonly used: number;
  readonly limit: number;
  /** Log fields that say which part is under pressure (the plugin, say). */
  readonly detail?: Readonly<Record<string, string>>;
}

/** A limit Portico watches: how to read it, its metric, and what the log lines say. */
export interface WatchedLimit {
  /** `near_<name>_limit` when usage crosses WARN_AT, `<name>_usage_normal` back under CLEAR_BELOW. */
  readonly name: string;
  readonly hint: string;
  read(): Usage | undefined | Promise<Usage | undefined>;
  setRatio(ratio: number): void;
}

type CapacityLog = Pick<Logger, 'warn' | 'log'>;

/**
 * Follows one limit: sets its metric at every check and logs once when usage crosses 80 % (and
 * once when it is back under 70 %), so operators see it before clients are refused.
 */
export class LimitWatch {
  private warned = false;

  public constructor(
    private readonly limit: WatchedLimit,
    private readonly logger: CapacityLog,
  ) {}

  public async check(): Promise<void> {
    const usage = await this.limit.read();
    if (usage === undefined || !(usage.limit > 0)) return;
    const ratio = usage.used / usage.limit;
    this.limit.setRatio(ratio);
    const transition = capacityTransition(this.warned, ratio);
    const fields = { ...usage.detail, used: usage.used, limit: usage.limit };
    if (transition === 'warn') {
      this.warned = true;
      this.logger.warn({
        event: `near_${this.limit.name}_limit`,
        ...fields,
        hint: this.limit.hint,
      });
    } else if (transition === 'clear') {
      this.warned = false;
      this.logger.log({ event: `${this.limit.name}_usage_normal`, ...fields });
    }
  }
}

/** Ports in `net.ipv4.ip_local_port_range` ("32768\t60999"), or undefined where unreadable. */
export function ephemeralPortCount(read: () => string): number | undefined {
  try {
    const [low, high] = read().trim().split(/\s+/).map(Number);
    if (low === undefined || high === undefined || !(high >= low)) return undefined;
    return high - low + 1;
  } catch {
    return undefined;
  }
}

/**
 * Watches how close the process is to the limits that decide how many connections a pod takes
 * (docs/operations.md, "Sizing"), every 5 s:
 * - **descriptors** (`fd`): two per proxied WebSocket, against the open-file limit;
 * - **heap** (`heap`): used V8 heap against its limit (`--max-old-space-size`);
 * - **loopback ports** (`upstream_port`): WebSockets to the busiest plugin against the ephemeral
 *   port range, since each is dialed from its own port on 127.0.0.1 to the plugin's one port.
 * Each has a `portico_*_usage_ratio` gauge and one warning line when it crosses 80 %.
 */
@Injectable()
export class CapacityMonitor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Capacity');
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private watches: LimitWatch[] = [];

  public constructor(private readonly metrics: PorticoMetrics) {}

  public onApplicationBootstrap(): void {
    this.watches = this.limits().map((limit) => new LimitWatch(limit, this.logger));
    // At once too, so the gauges have values from the first scrape.
    void this.check();
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  public onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private limits(): WatchedLimit[] {
    const limits: WatchedLimit[] = [
      {
        name: 'heap',
        hint: 'raise --max-old-space-size together with the memory limit, or add replicas',
        read: () => {
          const heap = getHeapStatistics();
          return { used: heap.used_heap_size, limit: heap.heap_size_limit };
        },
        setRatio: (ratio) => this.metrics.heapUsage.set(ratio),
      },
    ];
    const fdLimit = readOpenFileLimit()?.soft;
    // Not Linux, or unlimited: nothing to watch.
    if (fdLimit !== undefined && Number.isFinite(fdLimit))
      limits.push({
        name: 'fd',
        hint: 'each WebSocket takes two descriptors: add replicas or raise the limit',
        read: async () => ({ used: (await readdir('/proc/self/fd')).length, limit: fdLimit }),
        setRatio: (ratio) => this.metrics.fdUsage.set(ratio),
      });
    const ports = ephemeralPortCount(() =>
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'),
    );
    if (ports !== undefined)
      limits.push({
        name: 'upstream_port',
        hint: 'each WebSocket to a plugin takes a loopback port: widen net.ipv4.ip_local_port_range or add replicas',
        read: async () => {
          const { values } = await this.metrics.wsOpen.get();
          let busiest = values[0];
          for (const v of values) if (v.value > (busiest?.value ?? 0)) busiest = v;
          if (busiest === undefined) return { used: 0, limit: ports };
          return {
            used: busiest.value,
            limit: ports,
            detail: { plugin: String(busiest.labels.plugin) },
          };
        },
        setRatio: (ratio) => this.metrics.upstreamPortUsage.set(ratio),
      });
    return limits;
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      for (const watch of this.watches) {
        try {
          await watch.check();
        } catch {
          // /proc unreadable, say: nothing to report for this limit.
        }
      }
    } finally {
      this.checking = false;
    }
  }
}
