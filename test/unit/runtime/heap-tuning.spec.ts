import { getHeapStatistics } from 'node:v8';

import { HEAP_GROWING_PERCENT, tuneHeap } from '../../../src/runtime/heap-tuning';

describe('tuneHeap', () => {
  it('leaves a --heap-growing-percent given on the command line alone', () => {
    expect(tuneHeap(['--heap-growing-percent=50'])).toBe(false);
    expect(tuneHeap(['--heap_growing_percent=50'])).toBe(false);
  });

  it('sets V8 to grow the old generation to 4× the live heap otherwise', () => {
    expect(HEAP_GROWING_PERCENT).toBe(300);
    expect(tuneHeap(['--enable-source-maps'])).toBe(true);
    // The flag is read at the next full collection; the process must keep working normally.
    expect(getHeapStatistics().used_heap_size).toBeGreaterThan(0);
  });
});
