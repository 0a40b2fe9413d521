import { StringDecoder } from 'node:string_decoder';

import { MAX_LINE_CHARS } from './process-spawner';

/**
 * Splits a plugin's stdout or stderr, chunk by chunk, into lines: `\n` or `\r\n` ends a line,
 * UTF-8 characters split across chunks are joined, and a line longer than `maxChars` is
 * reported once, cut at `maxChars`, as soon as it is that long (its rest is dropped up to the
 * next newline), so one runaway line cannot grow memory. A last line without a newline is
 * reported at `end()`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  /** The current line was cut: drop what comes until its newline. */
  private skipping = false;

  public constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxChars = MAX_LINE_CHARS,
  ) {}

  public push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      if (!this.skipping) {
        this.onLine(trimCr(this.pending + text.slice(start, nl)).slice(0, this.maxChars));
      }
      this.pending = '';
      this.skipping = false;
      start = nl + 1;
    }
    if (this.skipping) return;
    this.pending += text.slice(start);
    if (this.pending.length > this.maxChars) {
      this.onLine(this.pending.slice(0, this.maxChars));
      this.pending = '';
      this.skipping = true;
    }
  }

  /** The stream ended: reports a last line that had no newline. */
  public end(): void {
    const rest = this.decoder.end();
    if (rest.length > 0) this.push(rest);
    if (this.pending.length > 0 && !this.skipping) this.onLine(trimCr(this.pending));
    this.pending = '';
    this.skipping = false;
  }
}

function trimCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
