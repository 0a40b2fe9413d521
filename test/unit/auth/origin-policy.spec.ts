import type { IncomingHttpHeaders } from 'node:http';

import fc from 'fast-check';

import {
  isAmbientCredential,
  normalizeOrigin,
  originAllowed,
  originVerdict,
} from '../../../src/auth/origin-policy';

const HOST = 'portico.example:8443';
const ALLOWED = ['https://console.example', 'http://localhost:3000'];
const verdict = (headers: IncomingHttpHeaders, allowed: readonly string[] = ALLOWED) =>
  originVerdict({ host: HOST, ...headers }, allowed);

describe('origin policy (CSRF rule for ambient credentials)', () => {
  describe('isAmbientCredential', () => {
    it.each([
      ['cookie', true],
      ['query', true],
      ['header', false],
      ['subprotocol', false],
    ] as const)('%s → %s', (source, ambient) => {
      expect(isAmbientCredential(source)).toBe(ambient);
    });
  });

  describe('with an Origin', () => {
    it.each([
      ['https://portico.example:8443', 'same-host'],
      ['http://portico.example:8443', 'same-host'],
      ['HTTPS://PORTICO.EXAMPLE:8443', 'same-host'],
      ['https://console.example', 'allowed-origin'],
      ['https://console.example:443', 'allowed-origin'],
      ['http://localhost:3000', 'allowed-origin'],
    ])('%s → allowed (%s)', (origin, by) => {
      expect(verdict({ origin })).toEqual({ allowed: true, by });
    });

    it.each([
      ['https://evil.example', 'foreign-origin'],
      ['https://portico.example', 'foreign-origin'],
      ['https://portico.example:3000', 'foreign-origin'],
      ['https://portico.example.evil.example:8443', 'foreign-origin'],
      ['http://console.example', 'foreign-origin'],
      ['https://localhost:3000', 'foreign-origin'],
      ['null', 'opaque-origin'],
      ['NULL', 'opaque-origin'],
      ['', 'malformed-origin'],
      ['portico.example:8443', 'malformed-origin'],
      ['file://portico.example:8443', 'malformed-origin'],
      ['https://user@portico.example:8443', 'malformed-origin'],
      ['https://portico.example:8443/path', 'malformed-origin'],
      ['https://portico.example:8443?x', 'malformed-origin'],
      ['https:portico.example:8443', 'malformed-origin'],
      ['https://portico.example:8443, https://evil.example', 'malformed-origin'],
    ])('%j → refused (%s)', (origin, reason) => {
      expect(verdict({ origin })).toEqual({ allowed: false, reason });
    });

    it('ignores Sec-Fetch-Site when there is an Origin to go by', () => {
      expect(verdict({ origin: 'https://evil.example', 'sec-fetch-site': 'same-origin' })).toEqual({
        allowed: false,
        reason: 'foreign-origin',
      });
    });

    it('compares with the Host header, default ports folded', () => {
      expect(originAllowed({ host: 'app.example:443', origin: 'https://app.example' }, [])).toBe(
        true,
      );
      expect(originAllowed({ host: 'app.example', origin: 'https://app.example:443' }, [])).toBe(
        true,
      );
      expect(originAllowed({ host: '[::1]:8080', origin: 'http://[::1]:8080' }, [])).toBe(true);
      expect(originAllowed({ host: 'App.Example', origin: 'https://app.example' }, [])).toBe(true);
    });

    it.each([
      ['no Host header', undefined],
      ['a Host with a path', 'app.example/x'],
      ['a Host with user info', 'evil@app.example'],
      ['an empty Host', ''],
    ])('refuses with %s', (_what, host) => {
      expect(originAllowed({ host, origin: 'https://app.example' }, [])).toBe(false);
    });
  });

  describe('without an Origin', () => {
    it.each(['same-origin', 'none', 'Same-Origin'])('Sec-Fetch-Site: %s → allowed', (site) => {
      expect(verdict({ 'sec-fetch-site': site })).toEqual({ allowed: true, by: 'fetch-metadata' });
    });

    it.each([['cross-site'], ['same-site'], ['bogus'], [undefined]])(
      'Sec-Fetch-Site: %s → refused',
      (site) => {
        expect(verdict(site === undefined ? {} : { 'sec-fetch-site': site })).toEqual({
          allowed: false,
          reason: 'no-origin',
        });
      },
    );
  });

  describe('normalizeOrigin', () => {
    it.each([
      ['https://App.Example', 'https://app.example'],
      ['https://app.example/', 'https://app.example'],
      ['https://app.example:443', 'https://app.example'],
      ['http://app.example:80', 'http://app.example'],
      ['http://app.example:8080', 'http://app.example:8080'],
      [' https://app.example ', 'https://app.example'],
      ['http://[::1]:3000', 'http://[::1]:3000'],
      ['https://bücher.example', 'https://xn--bcher-kva.example'],
    ])('%s → %s', (value, origin) => {
      expect(normalizeOrigin(value)).toBe(origin);
    });

    it.each([
      '*',
      'null',
      'app.example',
      'ftp://app.example',
      'https://app.example/x',
      'https://a:b@app.example',
      'https://app.example#x',
      'https:app.example',
      'https:\\\\app.example',
    ])('%j → undefined', (value) => {
      expect(normalizeOrigin(value)).toBeUndefined();
    });
  });

  describe('properties', () => {
    const header = fc.option(fc.string({ maxLength: 60 }), { nil: undefined });

    it('never throws, and lets nothing in without a reason', () => {
      fc.assert(
        fc.property(header, header, header, (origin, host, site) => {
          const v = originVerdict({ origin, host, 'sec-fetch-site': site }, ALLOWED);
          expect(typeof v.allowed).toBe('boolean');
          if (v.allowed) expect(['same-host', 'allowed-origin', 'fetch-metadata']).toContain(v.by);
        }),
      );
    });

    it('never allows an Origin whose host differs from Host and is not listed', () => {
      const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
      fc.assert(
        fc.property(label, label, fc.constantFrom('http', 'https'), (a, b, scheme) => {
          fc.pre(a !== b);
          expect(
            originAllowed({ host: `${a}.example`, origin: `${scheme}://${b}.example` }, ALLOWED),
          ).toBe(false);
        }),
      );
    });

    it('allows an Origin exactly when it is listed, if the host differs', () => {
      fc.assert(
        fc.property(fc.webUrl({ withFragments: false, withQueryParameters: false }), (url) => {
          const origin = new URL(url).origin;
          fc.pre(origin !== 'null' && !origin.includes(HOST));
          expect(originAllowed({ host: HOST, origin }, [origin])).toBe(true);
          expect(originAllowed({ host: HOST, origin }, [])).toBe(false);
        }),
      );
    });
  });
});
