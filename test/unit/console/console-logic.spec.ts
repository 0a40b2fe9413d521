import { Backoff } from '../../../console/src/backoff';
import { CLOSE_CODES, explainClose } from '../../../console/src/close-codes';
import { CloseCode } from '../../../src/plugins/proxy/ws-frame';

/** The console's pure pieces: reconnect delays and what each close code tells the user. */
describe('console: Backoff', () => {
  it('doubles up to the ceiling, each delay in the upper half of its step', () => {
    const low = new Backoff(500, 4_000, () => 0);
    expect([1, 2, 3, 4, 5].map(() => low.next())).toEqual([250, 500, 1_000, 2_000, 2_000]);
    const high = new Backoff(500, 4_000, () => 1);
    expect([1, 2, 3, 4, 5].map(() => high.next())).toEqual([500, 1_000, 2_000, 4_000, 4_000]);
  });

  it('spreads clients that reconnect at once (jitter), and starts over after reset', () => {
    let seed = 1;
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const delays = Array.from({ length: 50 }, () => new Backoff(500, 30_000, random).next());
    expect(new Set(delays).size).toBeGreaterThan(25);
    const b = new Backoff(500, 30_000, () => 1);
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(500);
  });
});

describe('console: close codes', () => {
  it.each(Object.entries(CloseCode))('explains %s (%d) from the contract', (_name, code) => {
    expect(CLOSE_CODES[code]).toBeDefined();
    expect(explainClose(code).what.length).toBeGreaterThan(5);
  });

  it('says which closes come back by themselves', () => {
    for (const code of [1001, 1012, 4503, 4504]) expect(explainClose(code).reconnects).toBe(true);
    for (const code of [4403, 4404, 1011]) expect(explainClose(code).reconnects).toBe(false);
  });

  it('still says something for a code it does not know', () => {
    expect(explainClose(4999).what).not.toBe('');
  });
});
