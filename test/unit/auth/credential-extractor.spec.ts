import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';

import {
  BEARER_SUBPROTOCOL_PREFIX,
  extractCredential,
  PORTICO_SUBPROTOCOL,
  stripBearerSubprotocol,
  stripCookie,
  stripTokenQuery,
} from '../../../src/auth/credential-extractor';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
const OTHER = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.b3RoZXI';

/** A raw Node request, as the WebSocket upgrade path sees it (no Express parsing). */
function request(url: string, headers: Record<string, string> = {}): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  req.url = url;
  req.headers = headers;
  return req;
}

const bearerProtocol = (token: string): string =>
  BEARER_SUBPROTOCOL_PREFIX + Buffer.from(token).toString('base64url');

describe('extractCredential', () => {
  it('never reads a token from the fragment, wherever a ? stands', () => {
    expect(extractCredential(request(`/p#x?token=${JWT}`))).toBeUndefined();
    expect(extractCredential(request(`/p?a=1#&token=${JWT}`))).toBeUndefined();
  });

  it('finds nothing on a request without credentials', () => {
    expect(extractCredential(request('/api/plugins?x=1', { cookie: 'a=1' }))).toBeUndefined();
  });

  it.each(['Bearer', 'bearer', 'BEARER', 'BeArEr'])(
    'reads Authorization: %s <jwt> with any case of the scheme',
    (scheme) => {
      expect(extractCredential(request('/', { authorization: `${scheme} ${JWT}` }))).toEqual({
        token: JWT,
        source: 'header',
      });
    },
  );

  it('ignores other Authorization schemes and an empty bearer', () => {
    expect(extractCredential(request('/', { authorization: 'Basic YWxpY2U6cHc=' }))).toBe(
      undefined,
    );
    expect(extractCredential(request('/', { authorization: 'Bearer ' }))).toBeUndefined();
  });

  it('decodes the bearer subprotocol among other offered protocols', () => {
    const req = request('/plugin-ws/echo', {
      'sec-websocket-protocol': `chat, ${bearerProtocol(JWT)}, ${PORTICO_SUBPROTOCOL}`,
    });
    expect(extractCredential(req)).toEqual({ token: JWT, source: 'subprotocol' });
  });

  it('reads the portico_token cookie among others, quoted or not', () => {
    expect(
      extractCredential(request('/', { cookie: `session=1; portico_token=${JWT}; theme=dark` })),
    ).toEqual({ token: JWT, source: 'cookie' });
    expect(extractCredential(request('/', { cookie: `portico_token="${JWT}"` }))).toEqual({
      token: JWT,
      source: 'cookie',
    });
    expect(extractCredential(request('/', { cookie: `xportico_token=${JWT}` }))).toBeUndefined();
  });

  it('reads ?token= from the query', () => {
    expect(extractCredential(request(`/plugin-ws/echo/sub?a=1&token=${JWT}&b=2`))).toEqual({
      token: JWT,
      source: 'query',
    });
    expect(extractCredential(request('/x?token=&other=1'))).toBeUndefined();
  });

  it('takes the first source present, in the contract order', () => {
    const header = { authorization: `Bearer ${JWT}` };
    const subprotocol = { 'sec-websocket-protocol': bearerProtocol(OTHER) };
    const cookie = { cookie: `portico_token=${JWT}` };
    const query = `/?token=${OTHER}`;
    expect(extractCredential(request(query, { ...header, ...subprotocol, ...cookie }))).toEqual({
      token: JWT,
      source: 'header',
    });
    expect(extractCredential(request(query, { ...subprotocol, ...cookie }))).toEqual({
      token: OTHER,
      source: 'subprotocol',
    });
    expect(extractCredential(request(query, cookie))).toEqual({ token: JWT, source: 'cookie' });
    expect(extractCredential(request(query))).toEqual({ token: OTHER, source: 'query' });
  });

  it('does not fall back when the first source holds a bad token', () => {
    const req = request(`/?token=${JWT}`, { authorization: 'Bearer not-a-jwt' });
    expect(extractCredential(req)).toEqual({ token: 'not-a-jwt', source: 'header' });
  });
});

describe('stripBearerSubprotocol', () => {
  it('keeps the offered protocols in order, minus the bearer entry', () => {
    expect(stripBearerSubprotocol(`chat,  ${bearerProtocol(JWT)} ,portico`)).toEqual([
      'chat',
      'portico',
    ]);
  });

  it('returns an empty list when nothing else was offered', () => {
    expect(stripBearerSubprotocol(undefined)).toEqual([]);
    expect(stripBearerSubprotocol(bearerProtocol(JWT))).toEqual([]);
  });
});

describe('stripTokenQuery', () => {
  it.each([
    [`/p/a?token=${JWT}`, '/p/a'],
    [`/p/a?x=1&token=${JWT}&y=%20z`, '/p/a?x=1&y=%20z'],
    [`/p?token=a&x=1&token=b`, '/p?x=1'],
    [`/p?%74oken=a&x=1`, '/p?x=1'],
    [`/p?token&x=1`, '/p?x=1'],
    [`?x=1&token=${JWT}`, '?x=1'],
    [`?token=${JWT}`, ''],
    ['/p?a=1&b=2#frag', '/p?a=1&b=2#frag'],
    [`/p?token=t&a=1#frag`, '/p?a=1#frag'],
    ['?token=1&token=2', ''],
    ['?tokens=1&b', '?tokens=1&b'],
    ['?', '?'],
  ])('%s → %s', (input, expected) => {
    expect(stripTokenQuery(input)).toBe(expected);
  });

  it('keeps similar names, the path and untouched URLs exactly', () => {
    expect(stripTokenQuery('/a%2Fb/?tokens=1&Token=2&x=a+b')).toBe(
      '/a%2Fb/?tokens=1&Token=2&x=a+b',
    );
    expect(stripTokenQuery('/token=1/path')).toBe('/token=1/path');
    expect(stripTokenQuery('')).toBe('');
  });
});

describe('stripCookie', () => {
  it('removes every cookie of that name and keeps the others as sent', () => {
    expect(stripCookie(`a=1; portico_token=${JWT};b="x y"; portico_token=2`, 'portico_token')).toBe(
      'a=1; b="x y"',
    );
  });

  it('returns undefined when nothing is left', () => {
    expect(stripCookie(`portico_token=${JWT}`, 'portico_token')).toBeUndefined();
    expect(stripCookie(undefined, 'portico_token')).toBeUndefined();
  });
});
