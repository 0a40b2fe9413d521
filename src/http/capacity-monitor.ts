import { readdir } from 'node:fs/promises';

import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';

import { PorticoMetrics } from '../metrics/portico-metrics';
import { readOpenFileLimit } from './open-file-limit';

/** How often descriptors are counted (a directory listing of /proc/self/fd: ~1 ms per 10,000). */
const CHECK_INTERVAL_MS = 5_000;
/** Share of the limit at which Portico warns, and below which it says the pressure is over. */
export const WARN_AT = 0.8;
export const CLEAR_BELOW = 0.7;

/** Whether to warn, clear, or stay quiet, given the last state and the current share. */
export function capacityTransition(warned: boolean, ratio: number): 'warn' | 'clear' | 'none' {
  if (!warned && ratio >= WARN_AT) return 'warn';
  if (warned && ratio < CLEAR_BELOW) return 'clear';
  return 'none';
}

/**
 * Watches how close the process is to its open-file limit: each proxied WebSocket holds two
 * descriptors, so the limit is the number of connections a pod can take (docs/operations.md,
 * "Sizing"). Sets `portico_fd_usage_ratio` and logs once when usage crosses 80 % (and once when
 * it is back under 70 %), so operators see it before clients are refused.
 */
@Injectable()
export class CapacityMonitor implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Capacity');
  private timer: NodeJS.Timeout | undefined;
  private warned = false;
  private checking = false;

  public constructor(private readonly metrics: PorticoMetrics) {}

  public onApplicationBootstrap(): void {
    const limit = readOpenFileLimit()?.soft;
    if (limit === undefined || !Number.isFinite(limit)) return; // not Linux, or unlimited
    this.timer = setInterval(() => void this.check(limit), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  public onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async check(limit: number): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const open = (await readdir('/proc/self/fd')).length;
      const ratio = open / limit;
      this.metrics.fdUsage.set(ratio);
      const transition = capacityTransition(this.warned, ratio);
      if (transition === 'warn') {
        this.warned = true;
        this.logger.warn({
          event: 'near_fd_limit',
          open,
          limit,
          hint: 'each WebSocket takes two descriptors: add replicas or raise the limit',
        });
      } else if (transition === 'clear') {
        this.warned = false;
        this.logger.log({ event: 'fd_usage_normal', open, limit });
      }
    } catch {
      // /proc unreadable: nothing to report.
    } finally {
      this.checking = false;
    }
  }
}
