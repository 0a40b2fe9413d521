import type { IncomingMessage } from 'node:http';

import {
  extractCredential,
  stripBearerSubprotocol,
  stripTokenQuery,
} from '../../../src/auth/credential-extractor';

function req(url: string, headers: Record<string, string> = {}): IncomingMessage {
  return { url, headers } as unknown as IncomingMessage;
}

const bearer = (token: string): string =>
  `base64url.bearer.authorization.portico.${Buffer.from(token).toString('base64url')}`;

describe('extractCredential', () => {
  it('reads an Authorization bearer header, any case', () => {
    expect(extractCredential(req('/', { authorization: 'bearer abc.def.ghi' }))).toEqual({
      token: 'abc.def.ghi',
      source: 'header',
    });
  });

  it('ignores other Authorization schemes', () => {
    expect(extractCredential(req('/', { authorization: 'Basic dXNlcjpwYXNz' }))).toBeUndefined();
  });

  it('reads the bearer subprotocol entry among others', () => {
    const header = `portico, ${bearer('sub.proto.token')}, chat`;
    expect(extractCredential(req('/', { 'sec-websocket-protocol': header }))).toEqual({
      token: 'sub.proto.token',
      source: 'subprotocol',
    });
  });

  it('reads the portico_token cookie', () => {
    expect(
      extractCredential(req('/', { cookie: 'a=1; portico_token=cookie.tok.en; b=2' })),
    ).toEqual({ token: 'cookie.tok.en', source: 'cookie' });
  });

  it('reads ?token= last', () => {
    expect(extractCredential(req('/x?a=1&token=q.t.k'))).toEqual({
      token: 'q.t.k',
      source: 'query',
    });
  });

  it('prefers the header over every other source', () => {
    const r = req('/x?token=q', {
      authorization: 'Bearer h',
      cookie: 'portico_token=c',
      'sec-websocket-protocol': bearer('s'),
    });
    expect(extractCredential(r)?.source).toBe('header');
  });

  it('finds nothing when there is nothing', () => {
    expect(extractCredential(req('/x?tokens=1', { cookie: 'other=1' }))).toBeUndefined();
  });
});

describe('credential stripping', () => {
  it('removes only the bearer entry from the offered subprotocols', () => {
    expect(stripBearerSubprotocol(`portico, ${bearer('t')}, chat`)).toEqual(['portico', 'chat']);
    expect(stripBearerSubprotocol(undefined)).toEqual([]);
  });

  it.each([
    ['', ''],
    ['?', ''],
    ['?token=abc', ''],
    ['?a=1&token=abc&b=2', '?a=1&b=2'],
    ['?token=1&token=2', ''],
    ['?%74oken=abc&x=%20y', '?x=%20y'],
    ['?tokens=1&b', '?tokens=1&b'],
  ])('strips token from %j', (input, output) => {
    expect(stripTokenQuery(input)).toBe(output);
  });
});
