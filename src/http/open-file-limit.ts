import { readFileSync } from 'node:fs';

/** RLIMIT_NOFILE of this process; `Infinity` for unlimited. */
export interface OpenFileLimit {
  readonly soft: number;
  readonly hard: number;
}

const LINE = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m;

/**
 * The process's open-file limit from `/proc/self/limits` (Linux); undefined where that file is
 * missing or unreadable. Node raises the soft limit to the hard one when it starts (POSIX), so
 * the hard limit is what the service manager or `ulimit -Hn` allows.
 */
export function readOpenFileLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): OpenFileLimit | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const match = LINE.exec(text);
  if (match === null) return undefined;
  const value = (v: string | undefined): number => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: value(match[1]), hard: value(match[2]) };
}
