import fc from 'fast-check';
import type { IncomingMessage } from 'node:http';

import {
  BEARER_SUBPROTOCOL_PREFIX,
  extractCredential,
  stripBearerSubprotocol,
  stripCookie,
  stripTokenQuery,
  TOKEN_COOKIE,
} from '../../src/auth/credential-extractor';

const RUNS = Number(process.env.FC_NUM_RUNS ?? 1000);

/** The only parts of a request extractCredential reads. */
function request(
  url: string,
  headers: Record<string, string | string[] | undefined>,
): IncomingMessage {
  return { url, headers } as unknown as IncomingMessage;
}

/** Every spelling a URL can give the name `token` (and near misses). */
const tokenName = fc.constantFrom(
  'token',
  '%74oken',
  '%74%6F%6B%65%6E',
  't%6fken',
  'tok%65n',
  'TOKEN',
  'token ',
  'to+ken',
  '%74oken%',
  'tokenx',
);

const queryText = fc.string({
  unit: fc.constantFrom('a', '=', '&', '%', '2', '6', '7', '4', 'f', '+', ' ', '#', '?', ';', 'é'),
  maxLength: 12,
});

/** A query pair, biased towards ones that spell `token`. */
const queryPair = fc.oneof(
  fc.tuple(tokenName, queryText).map(([n, v]) => `${n}=${v}`),
  tokenName,
  fc.tuple(queryText, queryText).map(([n, v]) => `${n}=${v}`),
  fc.string({ unit: 'binary', maxLength: 10 }),
);

/**
 * A request target as Node hands it over: the HTTP parser refuses spaces and control characters
 * in a request line, so a client has to percent-encode them.
 */
const url = fc
  .tuple(
    fc.constantFrom('/plugin-ws/echo', '/api/plugins/echo/rpc/x', '', '/p?x', '/'),
    fc.array(queryPair, { maxLength: 6 }),
    fc.option(
      fc.oneof(
        fc.string({ maxLength: 8 }),
        queryPair.map((p) => `?${p}`),
      ),
      {
        nil: undefined,
      },
    ),
    fc.boolean(),
  )
  .map(
    ([path, pairs, fragment, question]) =>
      `${path}${question || pairs.length > 0 ? '?' : ''}${pairs.join('&')}${fragment === undefined ? '' : `#${fragment}`}`,
  )
  .map((target) =>
    [...target]
      .map((c) => (c.charCodeAt(0) <= 0x20 || c === '\x7f' ? encodeURIComponent(c) : c))
      .join(''),
  );

/** The parameters a plugin reads from a request target (WHATWG URL, as Node servers parse it). */
function queryParams(target: string): URLSearchParams {
  return new URL(target, 'http://plugin.test').searchParams;
}

/** Both proxies forward the target without its fragment (the WebSocket route refuses one). */
function withoutFragment(target: string): string {
  return target.split('#', 1)[0] ?? '';
}

const cookieName = fc.constantFrom(TOKEN_COOKIE, ` ${TOKEN_COOKIE} `, 'other', 'PORTICO_TOKEN', '');
const cookieHeader = fc
  .tuple(
    fc.array(
      fc.oneof(
        fc.tuple(cookieName, fc.string({ maxLength: 8 })).map(([n, v]) => `${n}=${v}`),
        fc.string({ unit: 'binary', maxLength: 12 }),
      ),
      { maxLength: 5 },
    ),
    fc.constantFrom(';', '; ', ' ;'),
  )
  .map(([pairs, separator]) => pairs.join(separator));

const protocolHeader = fc.oneof(
  fc.constant(undefined),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc
    .array(
      fc.oneof(
        fc.constantFrom('portico', 'chat', ''),
        fc.string({ maxLength: 20 }).map((t) => BEARER_SUBPROTOCOL_PREFIX + t),
        fc
          .string({ maxLength: 20 })
          .map((t) => BEARER_SUBPROTOCOL_PREFIX + Buffer.from(t).toString('base64url')),
      ),
      { maxLength: 4 },
    )
    .map((entries) => entries.join(', ')),
);

const anyHeaderValue = fc.oneof(
  fc.constant(undefined),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 20 }).map((t) => `Bearer ${t}`),
  fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
);

describe('credential extraction', () => {
  it('any URL, Authorization, Cookie and subprotocol header → extractCredential never throws', () => {
    fc.assert(
      fc.property(url, anyHeaderValue, cookieHeader, protocolHeader, (u, authz, cookie, proto) => {
        const found = extractCredential(
          request(u, {
            authorization: typeof authz === 'string' ? authz : undefined,
            cookie,
            'sec-websocket-protocol': proto,
          }),
        );
        if (found !== undefined) expect(found.token.length).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('any URL, %-encoded or not → stripTokenQuery leaves no parameter named token', () => {
    fc.assert(
      fc.property(url, (u) => {
        const stripped = stripTokenQuery(u);
        expect(queryParams(stripped).has('token')).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('any URL → stripTokenQuery keeps every other parameter, in order, and the path', () => {
    fc.assert(
      fc.property(url, (u) => {
        const stripped = stripTokenQuery(u);
        const others = [...queryParams(u)].filter(([name]) => name !== 'token');
        expect([...queryParams(stripped)]).toEqual(others);
        expect(stripped.split(/[?#]/, 1)[0]).toBe(u.split(/[?#]/, 1)[0]);
        expect(stripTokenQuery(stripped)).toBe(stripped);
      }),
      { numRuns: RUNS },
    );
  });

  it('any Cookie header → stripCookie leaves no portico_token and keeps the other pairs', () => {
    fc.assert(
      fc.property(cookieHeader, (cookie) => {
        const stripped = stripCookie(cookie, TOKEN_COOKIE);
        if (stripped === undefined) return;
        const names = stripped.split(';').map((p) => p.split('=', 1)[0]?.trim());
        expect(names).not.toContain(TOKEN_COOKIE);
        expect(stripCookie(stripped, TOKEN_COOKIE)).toBe(stripped);
      }),
      { numRuns: RUNS },
    );
  });

  it('any request with its credentials stripped as forwarded → no credential left to find', () => {
    fc.assert(
      fc.property(url, cookieHeader, protocolHeader, (u, cookie, proto) => {
        const forwarded = request(stripTokenQuery(withoutFragment(u)), {
          cookie: stripCookie(cookie, TOKEN_COOKIE),
          'sec-websocket-protocol': stripBearerSubprotocol(proto).join(', '),
        });
        expect(extractCredential(forwarded)).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });
});
