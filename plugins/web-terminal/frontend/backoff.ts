/**
 * Reconnection delays: 0.5 s doubling to 10 s, each varied by ±50% so that the clients a restart
 * disconnected all at once do not come back all at once.
 */
export class Backoff {
  private attempt = 0;

  public constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 10_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt. */
  public next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (0.5 + this.random()));
  }

  /** Called once a connection proved good (the shell answered). */
  public reset(): void {
    this.attempt = 0;
  }
}
