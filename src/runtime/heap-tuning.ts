import { setFlagsFromString } from 'node:v8';

/**
 * V8 counts the ArrayBuffers behind not-yet-collected socket reads towards the old generation's
 * limit. Relaying a few hundred MB/s allocates tens of MB of read buffers between two young-
 * generation collections; with Portico's ~20 MB heap and V8's default limit (about 2× the live
 * heap) that starts a full mark-compact every ~60 ms, which cost about a third of the relay's
 * CPU in the bulk benchmark (docs/benchmarks.md). A fixed 4× limit leaves room for that
 * short-lived external memory: the benchmark then shows no full collections at all while bulk
 * relaying, and idle memory per connection did not change. Applied before the app is built;
 * a `--heap-growing-percent` given on the command line wins.
 */
export const HEAP_GROWING_PERCENT = 300;

export function tuneHeap(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
