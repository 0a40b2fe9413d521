import fc from 'fast-check';

import { SecretRedactor } from '../../../src/plugins/secrets/secret-redactor';

describe('SecretRedactor', () => {
  const redact = (values: string[], text: string): string =>
    new SecretRedactor(values).redact(text);

  it('replaces every occurrence of a value', () => {
    expect(redact(['hunter22'], 'token=hunter22 again hunter22.')).toBe(
      'token=[REDACTED] again [REDACTED].',
    );
  });

  it('returns the text unchanged when no value occurs in it', () => {
    const text = 'nothing to see here';
    expect(redact(['hunter22', 'sk-12345'], text)).toBe(text);
    expect(redact([], text)).toBe(text);
  });

  it('leaves values shorter than 4 characters alone', () => {
    expect(redact(['abc', ''], 'abc abc')).toBe('abc abc');
    // Not even a cut-off start of one at the end of a truncated line.
    expect(new SecretRedactor(['abc']).redact('YWJj 616263 ab', true)).toBe('YWJj 616263 ab');
  });

  it('handles many values at once', () => {
    const values = Array.from({ length: 200 }, (_, i) => `secret-${i}-${'x'.repeat(i % 7)}`);
    const line = values.filter((_, i) => i % 3 === 0).join(' | ');
    const out = redact(values, line);
    expect(out).not.toMatch(/secret-/);
    expect(out.split(' | ').every((part) => part === '[REDACTED]')).toBe(true);
  });

  it('hides every character of overlapping values, with one marker per covered run', () => {
    // "abcdef" holds both "abcd" and "cdef": a leftmost match alone would leave "ef" visible.
    expect(redact(['abcd', 'cdef'], 'x abcdef y')).toBe('x [REDACTED] y');
    // One value inside another.
    expect(redact(['pass', 'password123'], 'password123 pass')).toBe('[REDACTED] [REDACTED]');
    // Overlapping repeats of one value.
    expect(redact(['aaaa'], 'b aaaaaaa b')).toBe('b [REDACTED] b');
    expect(redact(['abab'], '-ababab-')).toBe('-[REDACTED]-');
  });

  it('also hides the base64, base64url, URL-encoded and JSON-escaped forms', () => {
    const value = 'p@ss w/rd?"quoted"\\+';
    const forms = [
      Buffer.from(value).toString('base64'),
      Buffer.from(value).toString('base64url'),
      encodeURIComponent(value),
      JSON.stringify({ value }),
    ];
    for (const form of forms) expect(redact([value], `before ${form} after`)).not.toContain(form);
    expect(redact([value], JSON.stringify({ value }))).toBe('{"value":"[REDACTED]"}');
    expect(redact([value], `Basic ${Buffer.from(value).toString('base64')}`)).toMatch(
      /^Basic \[REDACTED\]=*$/,
    );
  });

  describe('a value inside a longer base64 encoding, at each of the 3 byte offsets', () => {
    const secret = 'hunter2-correct-horse';
    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    const url = (text: string): string => Buffer.from(text).toString('base64url');

    /**
     * The encoded text must keep at most the characters made of the neighbours' bytes, plus
     * one on each side that mixes their bits with the value's: nothing made of the value alone.
     */
    function expectHidden(encoded: string, before: number, after: number): void {
      const out = redact([secret], encoded);
      const match = /^([A-Za-z0-9+/_-]*)\[REDACTED\]([A-Za-z0-9+/_-]*)=*$/.exec(out);
      expect(match).not.toBeNull();
      expect((match?.[1] ?? '').length).toBeLessThanOrEqual(Math.ceil((8 * before) / 6));
      expect((match?.[2] ?? '').length).toBeLessThanOrEqual(Math.ceil((8 * after) / 6) + 1);
    }

    it.each(['', 'a', 'ab', 'abc', 'abcd', 'abcde'])(
      'hides the password of a Basic auth header for user %j',
      (user) => {
        expectHidden(b64(`${user}:${secret}`), user.length + 1, 0);
        expectHidden(url(`${user}:${secret}`), user.length + 1, 0);
        expectHidden(b64(`${user}:${secret}:more`), user.length + 1, 5);
      },
    );

    it('property: any bytes before and after, in base64 or base64url', () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 7 }),
          fc.uint8Array({ maxLength: 7 }),
          fc.boolean(),
          (before, after, urlSafe) => {
            const bytes = Buffer.concat([before, Buffer.from(secret), after]);
            const encoded = bytes.toString(urlSafe ? 'base64url' : 'base64');
            expectHidden(encoded, before.length, after.length);
          },
        ),
      );
    });
  });

  it('hides a value printed as hex, in lower and upper case', () => {
    const secret = 'sk_live_0123456789';
    const hex = Buffer.from(secret).toString('hex');
    expect(redact([secret], `key=${hex}`)).toBe('key=[REDACTED]');
    expect(redact([secret], `key=0x${hex.toUpperCase()}!`)).toBe('key=0x[REDACTED]!');
  });

  it('hides form-encoded (`+` for spaces) and ASCII-only JSON forms', () => {
    const secret = 'pässwörd with spaces*';
    const form = new URLSearchParams({ p: secret }).toString();
    expect(redact([secret], form)).toBe('p=[REDACTED]');
    const ascii = JSON.stringify(secret).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    expect(redact([secret], `{"p":${ascii}}`)).toBe('{"p":"[REDACTED]"}');
  });

  it('hides a value with a lone surrogate as the process prints it (U+FFFD)', () => {
    expect(redact(['abc\ud800def'], 'x abc\ufffddef y')).toBe('x [REDACTED] y');
  });

  it('keeps the 4-character minimum for every form', () => {
    // A 3-character value has 4-character encodings; it is still not redacted.
    expect(redact(['abc'], `${Buffer.from('abc').toString('hex')} YWJj`)).toBe('616263 YWJj');
  });

  // Cost is bounded by design (one native scan per value and form, overlapping repeats stepped
  // by the value's period); the bench, not a timed test, is where speed is measured.
  it('handles long lines with many values and dense overlapping matches', () => {
    const values = Array.from({ length: 500 }, (_, i) => `tok_${i.toString(36)}_${'q'.repeat(20)}`);
    const line = 'z'.repeat(16 * 1024);
    const dense = 'a'.repeat(16 * 1024);
    expect(redact(values, line)).toBe(line);
    expect(redact(['aaaa', 'aaaaaaaaaaaaaaaa'], dense)).toBe('[REDACTED]');
    expect(redact([values[7] as string], `${line}${values[7]}`)).toBe(`${line}[REDACTED]`);
  });

  describe('a line cut off at the length limit', () => {
    const secret = 'sk_live_0123456789abcdef';
    const cut = (values: string[], text: string): string =>
      new SecretRedactor(values).redact(text, true);

    it('hides a value cut in two at the end of the line', () => {
      expect(cut([secret], `key=${secret.slice(0, 10)}`)).toBe('key=[REDACTED]');
      expect(cut([secret], `key=${Buffer.from(secret).toString('base64').slice(0, 9)}`)).toBe(
        'key=[REDACTED]',
      );
    });

    it('finds the longest cut value even when the value repeats itself', () => {
      expect(cut(['abcabcabd'], 'x abcabcab')).toBe('x [REDACTED]');
      expect(cut(['abababab'], 'x ababab')).toBe('x [REDACTED]');
    });

    it('keeps fewer than 4 trailing characters, and whole values are still found anywhere', () => {
      expect(cut([secret], 'key=sk_')).toBe('key=sk_');
      expect(cut([secret], `${secret} and ${secret.slice(0, 5)}`)).toBe(
        '[REDACTED] and [REDACTED]',
      );
    });

    it('does not touch the end of a line that was not cut', () => {
      expect(redact([secret], `key=${secret.slice(0, 10)}`)).toBe(`key=${secret.slice(0, 10)}`);
    });
  });
});
