/**
 * Reconnect delays: doubling from `initialMs` up to `maxMs`, each drawn at random from its upper
 * half, so that every console reconnecting after a host restart does not knock at the same moment.
 */
export class Backoff {
  private attempt = 0;

  public constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call counts one attempt. */
  public next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** After a connection that worked: the next failure starts from `initialMs` again. */
  public reset(): void {
    this.attempt = 0;
  }
}
