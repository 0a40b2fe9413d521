import fc from 'fast-check';
import type { IncomingHttpHeaders } from 'node:http';

import { bodyFraming, forwardableHeaders } from '../../src/plugins/proxy/forwarded-headers';

const RUNS = Number(process.env.FC_NUM_RUNS ?? 1000);

/** Names a hostile client would try, in the spellings Node hands over (lower case). */
const interestingName = fc.constantFrom(
  'authorization',
  'cookie',
  'forwarded',
  'x-plugin-user-id',
  'x-plugin-user-roles',
  'x-plugin-user-signature',
  'x-plugin-secret-github_token',
  'x_plugin_user_id',
  'x-plugin_user-roles',
  'x-forwarded-for',
  'x-forwarded-host',
  'x_forwarded_for',
  'x-real-ip',
  'x_real_ip',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'host',
  'proxy-authorization',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'accept',
  'content-type',
  'x-custom',
);
const tokenChar = fc.constantFrom(
  ..."abcdefghijklmnopqrstuvwxyz0123456789-_!#$%&'*+.^`|~".split(''),
);
const headerName = fc.oneof(
  { arbitrary: interestingName, weight: 4 },
  { arbitrary: fc.string({ unit: tokenChar, minLength: 1, maxLength: 16 }), weight: 1 },
  {
    arbitrary: fc
      .tuple(
        fc.constantFrom('x-plugin-', 'x_plugin_', 'x-forwarded-', 'x_forwarded_'),
        fc.string({ unit: tokenChar, maxLength: 8 }),
      )
      .map(([prefix, rest]) => prefix + rest),
    weight: 1,
  },
);

/** A Connection header listing names (any case, odd spacing, empty entries). */
const connectionValue = fc
  .array(
    fc.oneof(
      fc.mixedCase(interestingName),
      fc.constantFrom('keep-alive', 'Upgrade', 'close', '', ' '),
      fc.string({ unit: tokenChar, maxLength: 10 }),
    ),
    { maxLength: 6 },
  )
  .chain((tokens) =>
    fc.constantFrom(', ', ',', ' , ', ',,').map((separator) => tokens.join(separator)),
  );

const headerValue = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.stringMatching(/^\d{1,6}$/),
  fc.constantFrom('chunked', 'gzip, chunked', 'chunked, gzip', '5, 5', '5, 6', '-1', 'Bearer x'),
);

const clientHeaders: fc.Arbitrary<IncomingHttpHeaders> = fc
  .tuple(
    fc.dictionary(headerName, headerValue, { maxKeys: 12 }),
    fc.option(connectionValue, { nil: undefined }),
  )
  .map(([headers, connection]) => {
    const out: IncomingHttpHeaders = { ...headers };
    if (connection !== undefined) out.connection = connection;
    return out;
  });

/** Identity and forwarding headers Portico adds itself. */
const PORTICO_EXTRAS = [
  { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'portico' },
  {
    'x-plugin-user-id': 'alice',
    'x-plugin-user-roles': 'ops',
    'x-plugin-user-signature': 'v2.sig',
  },
] as const;

/** The name a plugin framework may read a header as: lower case, `_` read as `-`. */
function canonical(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

function isCredentialOrSpoofable(name: string): boolean {
  const n = canonical(name);
  return (
    ['authorization', 'cookie', 'forwarded', 'x-real-ip', 'proxy-authorization'].includes(n) ||
    n.startsWith('x-plugin-') ||
    n.startsWith('x-forwarded-')
  );
}

/** A copy of `headers` without `name`. */
function without(headers: IncomingHttpHeaders, name: string): IncomingHttpHeaders {
  const copy = { ...headers };
  delete copy[name];
  return copy;
}

describe('forwarded headers', () => {
  it('any client headers, any Connection list → no credential, x-plugin-*, x-forwarded-* or x-real-ip from the client in any spelling', () => {
    fc.assert(
      fc.property(clientHeaders, (headers) => {
        const out = forwardableHeaders(headers, []);
        expect(Object.keys(out).filter(isCredentialOrSpoofable)).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });

  it("any client headers → Portico's identity and forwarding headers arrive exactly as Portico set them", () => {
    fc.assert(
      fc.property(clientHeaders, (headers) => {
        const out = forwardableHeaders(headers, [...PORTICO_EXTRAS]);
        const spoofable = Object.keys(out).filter(isCredentialOrSpoofable);
        const ours = Object.assign({}, ...PORTICO_EXTRAS) as Record<string, string>;
        const arrived = Object.fromEntries(spoofable.map((name) => [name, out[name]]));
        expect(arrived).toEqual(ours);
      }),
      { numRuns: RUNS },
    );
  });

  it('any client headers → only headers the client sent (values untouched) or Portico added', () => {
    fc.assert(
      fc.property(clientHeaders, (headers) => {
        const out = forwardableHeaders(headers, []);
        const sent = Object.fromEntries(Object.keys(out).map((name) => [name, headers[name]]));
        expect(out).toEqual(sent);
      }),
      { numRuns: RUNS },
    );
  });

  it('a Connection header naming Content-Length or Transfer-Encoding → framing forwarded as without it', () => {
    fc.assert(
      fc.property(clientHeaders, (headers) => {
        const out = forwardableHeaders(headers, []);
        const plain = forwardableHeaders(without(headers, 'connection'), []);
        expect({
          'content-length': out['content-length'],
          'transfer-encoding': out['transfer-encoding'],
        }).toEqual({
          'content-length': plain['content-length'],
          'transfer-encoding': plain['transfer-encoding'],
        });
        expect(bodyFraming(headers)).toEqual(bodyFraming(without(headers, 'connection')));
      }),
      { numRuns: RUNS },
    );
  });

  it('a Connection header naming the WebSocket handshake headers → they are still forwarded', () => {
    fc.assert(
      fc.property(
        clientHeaders,
        fc.constantFrom('sec-websocket-key', 'sec-websocket-version'),
        (headers, name) => {
          const withName = {
            ...headers,
            [name]: 'dGhlIHNhbXBsZSBub25jZQ==',
            connection: `Upgrade, ${name}`,
          };
          expect(forwardableHeaders(withName, [])[name]).toBe('dGhlIHNhbXBsZSBub25jZQ==');
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('both Content-Length and Transfer-Encoding, or differing lengths → framing ambiguous (refused)', () => {
    fc.assert(
      fc.property(
        clientHeaders,
        fc.stringMatching(/^\d{1,6}$/),
        fc.constantFrom('chunked', 'gzip, chunked', 'identity'),
        (headers, length, coding) => {
          expect(
            bodyFraming({ ...headers, 'content-length': length, 'transfer-encoding': coding }),
          ).toBeUndefined();
          const other = String(Number(length) + 1);
          expect(
            bodyFraming({
              ...without(headers, 'transfer-encoding'),
              'content-length': `${length}, ${other}`,
            }),
          ).toBeUndefined();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('any Content-Length / Transfer-Encoding values → a framing that matches them exactly, or refused', () => {
    fc.assert(
      fc.property(clientHeaders, (headers) => {
        const framing = bodyFraming(headers);
        if (framing === undefined) return;
        const cl = headers['content-length'];
        const te = headers['transfer-encoding'];
        if (framing.kind === 'chunked') {
          expect(cl).toBeUndefined();
          expect(te?.toLowerCase().split(',').pop()?.trim()).toBe('chunked');
        } else if (framing.kind === 'length') {
          expect(te).toBeUndefined();
          expect(cl?.split(',').map((v) => Number(v.trim()))).toEqual(
            expect.arrayContaining([framing.length]),
          );
          expect(new Set(cl?.split(',').map((v) => v.trim())).size).toBe(1);
        } else {
          expect(te).toBeUndefined();
          if (cl !== undefined) expect(Number(cl.split(',')[0])).toBe(0);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
