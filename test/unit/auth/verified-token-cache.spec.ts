import type { Principal } from '../../../src/auth/principal';
import { VerifiedTokenCache } from '../../../src/auth/verified-token-cache';

const alice = (): Principal => ({
  id: 'alice',
  name: 'Alice',
  roles: ['dev'],
  iat: 1,
  exp: undefined,
});
const OPTIONS = { maxEntries: 3, maxAgeMs: 60_000, maxTokenLength: 100 };

describe('VerifiedTokenCache', () => {
  it('returns a cached principal until the token expires', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    cache.set('t1', alice(), 0, 10_000);
    expect(cache.get('t1', 9_999)).toMatchObject({ id: 'alice' });
    expect(cache.get('t1', 10_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never trusts an entry longer than maxAgeMs, even for a token without exp', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    cache.set('no-exp', alice(), 0);
    cache.set('late-exp', alice(), 0, 10 * 60_000);
    expect(cache.get('no-exp', 59_999)).toBeDefined();
    expect(cache.get('no-exp', 60_000)).toBeUndefined();
    expect(cache.get('late-exp', 60_000)).toBeUndefined();
  });

  it('does not keep a token that is already expired', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    cache.set('t', alice(), 5_000, 5_000);
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used token beyond maxEntries', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    for (const t of ['a', 'b', 'c']) cache.set(t, alice(), 0);
    expect(cache.get('a', 1)).toBeDefined(); // a is now the most recent
    cache.set('d', alice(), 2);
    expect(cache.size).toBe(3);
    expect(cache.get('b', 3)).toBeUndefined();
    for (const t of ['a', 'c', 'd']) expect(cache.get(t, 3)).toBeDefined();
  });

  it('does not cache tokens longer than maxTokenLength', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    cache.set('x'.repeat(101), alice(), 0);
    cache.set('x'.repeat(100), alice(), 0);
    expect(cache.size).toBe(1);
  });

  it('hands out a principal nobody can change', () => {
    const cache = new VerifiedTokenCache(OPTIONS);
    cache.set('t', alice(), 0);
    const p = cache.get('t', 1) as Principal;
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.roles)).toBe(true);
    expect(() => (p.roles as string[]).push('admin')).toThrow();
  });
});
