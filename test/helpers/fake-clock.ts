import type { Clock, ClockTimer } from '../../src/common/clock';

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/** A clock whose timers fire only when the test advances time. */
export class FakeClock implements Clock {
  private time = 0;
  private nextId = 1;
  private timers: Pending[] = [];

  public now(): number {
    return this.time;
  }

  public setTimeout(fn: () => void, ms: number): ClockTimer {
    const id = this.nextId++;
    this.timers.push({ id, at: this.time + ms, fn });
    return id as unknown as ClockTimer;
  }

  public clearTimeout(timer: ClockTimer): void {
    this.timers = this.timers.filter((t) => t.id !== (timer as unknown as number));
  }

  /** Runs every timer due within `ms`, in time order, including ones scheduled meanwhile. */
  public advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id);
      const next = due[0];
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.time = next.at;
      next.fn();
    }
    this.time = end;
  }

  public get pendingTimers(): number {
    return this.timers.length;
  }
}
