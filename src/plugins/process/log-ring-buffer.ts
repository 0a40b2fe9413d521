import type { OutputStream } from './process-spawner';

export interface LogLine {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly stream: OutputStream | 'portico';
  readonly line: string;
}

/**
 * Last lines of a plugin's output, bounded by line count and total characters: a fixed array
 * of `maxLines` slots used as a ring (`head` is the oldest line), so a push costs the same
 * however full the buffer is.
 */
export class LogRingBuffer {
  private readonly slots: (LogLine | undefined)[];
  /** Index of the oldest line. */
  private head = 0;
  private count = 0;
  private chars = 0;

  public constructor(
    private readonly maxLines = 1000,
    private readonly maxChars = 1024 * 1024,
  ) {
    if (!Number.isInteger(maxLines) || maxLines < 1) throw new RangeError('maxLines must be ≥ 1');
    this.slots = new Array<LogLine | undefined>(maxLines).fill(undefined);
  }

  /** Adds the newest line, dropping the oldest ones while either bound is exceeded. */
  public push(entry: LogLine): void {
    if (this.count === this.maxLines) this.dropOldest();
    this.slots[(this.head + this.count) % this.maxLines] = entry;
    this.count += 1;
    this.chars += entry.line.length;
    while (this.chars > this.maxChars && this.count > 0) this.dropOldest();
  }

  /** The newest `n` lines, oldest first. */
  public tail(n: number): LogLine[] {
    const take = Math.min(Math.max(Math.floor(n), 0), this.count);
    const lines: LogLine[] = [];
    for (let i = this.count - take; i < this.count; i++) {
      const line = this.slots[(this.head + i) % this.maxLines];
      if (line !== undefined) lines.push(line);
    }
    return lines;
  }

  public get size(): number {
    return this.count;
  }

  private dropOldest(): void {
    const oldest = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.maxLines;
    this.count -= 1;
    this.chars -= oldest?.line.length ?? 0;
  }
}
