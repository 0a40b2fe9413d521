import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';

import fc from 'fast-check';

import { extractCredential } from '../../../src/auth/credential-extractor';
import { redactUrl } from '../../../src/logging/redact-url';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

function queryToken(url: string): string | undefined {
  const req = new IncomingMessage(new Socket());
  req.url = url;
  req.headers = {};
  const credential = extractCredential(req);
  return credential?.source === 'query' ? credential.token : undefined;
}

describe('redactUrl', () => {
  it('hides the value of a literal token parameter, keeping everything else', () => {
    expect(redactUrl(`/api/plugins?token=${JWT}`)).toBe('/api/plugins?token=[REDACTED]');
    expect(redactUrl(`/p?a=1&token=${JWT}&b=2#frag`)).toBe('/p?a=1&token=[REDACTED]&b=2#frag');
    expect(redactUrl('/p?token=&x=1')).toBe('/p?token=[REDACTED]&x=1');
  });

  it('returns URLs without a token parameter unchanged', () => {
    for (const url of ['/', '/api/plugins', '/p?a=1&b=2', '/p?tokens=1&mytoken=2', '/token=x'])
      expect(redactUrl(url)).toBe(url);
  });

  it.each([
    ['a percent-escaped letter', `/p?%74oken=${JWT}`],
    ['a lower-case hex escape', `/p?t%6fken=${JWT}`],
    ['every letter escaped', `/p?%74%6F%6B%65%6E=${JWT}`],
    ['upper-case letters', `/p?TOKEN=${JWT}`],
    ['a `+` (a space) after it', `/p?token+=${JWT}`],
    ['a malformed escape before it', `/p?x=%zz%&%74oken=${JWT}`],
    ['a fragment before it', `/p?a=1#token=${JWT}`],
    ['an empty token before it', `/p?token=&%74oken=${JWT}`],
  ])('hides the value of a token parameter spelled with %s', (_case, url) => {
    expect(redactUrl(url)).not.toContain(JWT);
    expect(redactUrl(url)).toContain('=[REDACTED]');
  });

  it('never throws on malformed escapes or odd input', () => {
    for (const url of ['/p?%', '/p?%%%=1', '/p?=&=&', '/p?\u0000=1', '/p?%E2%82=1', '?', '#?'])
      expect(() => redactUrl(url)).not.toThrow();
  });

  /** A spelling of `token` that URLSearchParams reads back as `token`. */
  const tokenSpelling = fc
    .array(fc.constantFrom<'plain' | 'upper' | 'lower'>('plain', 'upper', 'lower'), {
      minLength: 5,
      maxLength: 5,
    })
    .map((modes) =>
      [...'token']
        .map((ch, i) => {
          const hex = ch.charCodeAt(0).toString(16);
          if (modes[i] === 'upper') return `%${hex.toUpperCase()}`;
          if (modes[i] === 'lower') return `%${hex}`;
          return ch;
        })
        .join(''),
    );
  const queryChar = fc.constantFrom(...'aZ09-_.~%+=&#?'.split(''), '%41', '%zz', '%7');

  it('property: no URL that authenticates by query is logged with its token', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: queryChar, maxLength: 12 }), { maxLength: 4 }),
        tokenSpelling,
        fc.nat({ max: 4 }),
        (others, name, at) => {
          const pairs = [...others];
          pairs.splice(Math.min(at, pairs.length), 0, `${name}=${JWT}`);
          const url = `/api/plugins?${pairs.join('&')}`;
          const logged = redactUrl(url);
          // The credential extractor would find no token in what is logged.
          const found = queryToken(logged);
          expect(found === undefined || found === '[REDACTED]').toBe(true);
          if (queryToken(url) === JWT) expect(logged).not.toContain(JWT);
        },
      ),
    );
  });

  it('property: any string → no throw, and the extractor finds no token in the result', () => {
    fc.assert(
      fc.property(fc.string({ unit: queryChar, maxLength: 40 }), (tail) => {
        const logged = redactUrl(`/p?${tail}`);
        const found = queryToken(logged);
        expect(found === undefined || found === '[REDACTED]').toBe(true);
      }),
    );
  });
});
