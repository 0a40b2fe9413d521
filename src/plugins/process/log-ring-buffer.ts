import type { OutputStream } from './process-spawner';

export interface LogLine {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly stream: OutputStream | 'portico';
  readonly line: string;
}

/** Last lines of a plugin's output, bounded by line count and total characters. */
export class LogRingBuffer {
  private readonly lines: LogLine[] = [];
  private chars = 0;

  public constructor(
    private readonly maxLines = 1000,
    private readonly maxChars = 1024 * 1024,
  ) {}

  public push(entry: LogLine): void {
    this.lines.push(entry);
    this.chars += entry.line.length;
    while (this.lines.length > this.maxLines || this.chars > this.maxChars) {
      const dropped = this.lines.shift();
      if (dropped === undefined) break;
      this.chars -= dropped.line.length;
    }
  }

  /** The newest `n` lines, oldest first. */
  public tail(n: number): LogLine[] {
    return n <= 0 ? [] : this.lines.slice(-n);
  }

  public get size(): number {
    return this.lines.length;
  }
}
