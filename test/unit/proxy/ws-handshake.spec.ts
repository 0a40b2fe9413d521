import {
  BEARER_SUBPROTOCOL_PREFIX,
  PORTICO_SUBPROTOCOL,
} from '../../../src/auth/credential-extractor';
import {
  clientHandshakeFault,
  clientSwitchingProtocols,
  httpRejection,
  parseResponseHead,
  refusalProtocol,
  upstreamHandshakeHeaders,
  upstreamRefusal,
  upstreamRequestHead,
} from '../../../src/plugins/proxy/ws-handshake';

const BEARER = `${BEARER_SUBPROTOCOL_PREFIX}dG9rZW4`;

describe('ws-handshake', () => {
  describe('upstreamHandshakeHeaders', () => {
    it('forwards end-to-end headers, drops credentials and Origin, never offers an extension', () => {
      const headers = upstreamHandshakeHeaders(
        {
          'sec-websocket-key': 'abc==',
          'sec-websocket-version': '13',
          'sec-websocket-extensions': 'permessage-deflate',
          'sec-websocket-protocol': `${BEARER}, chat`,
          authorization: 'Bearer t',
          cookie: 'portico_token=t',
          origin: 'https://app.example.com',
          'user-agent': 'ua',
        },
        [],
        ['chat'],
      );
      expect({ ...headers }).toEqual({
        'sec-websocket-key': 'abc==',
        'sec-websocket-version': '13',
        'sec-websocket-protocol': 'chat',
        'user-agent': 'ua',
      });
    });

    it('lets forwarding and identity headers win over what the client sent', () => {
      const headers = upstreamHandshakeHeaders(
        { 'x-plugin-user-id': 'mallory', 'x-forwarded-for': '6.6.6.6' },
        [{ 'x-forwarded-for': '127.0.0.1' }, { 'x-plugin-user-id': 'alice' }],
        [],
      );
      expect({ ...headers }).toEqual({
        'x-forwarded-for': '127.0.0.1',
        'x-plugin-user-id': 'alice',
      });
    });

    it('sends no Sec-WebSocket-Protocol when only the bearer entry was offered', () => {
      const headers = upstreamHandshakeHeaders({ 'sec-websocket-protocol': BEARER }, [], []);
      expect(headers['sec-websocket-protocol']).toBeUndefined();
    });
  });

  describe('upstreamRequestHead', () => {
    it('is a GET upgrade to 127.0.0.1:<port> with each header value on its own line', () => {
      const head = upstreamRequestHead('/ws/sub?x=1', 4123, { a: '1', b: ['2', '3'] });
      expect(head).toBe(
        'GET /ws/sub?x=1 HTTP/1.1\r\nHost: 127.0.0.1:4123\r\n' +
          'Connection: Upgrade\r\nUpgrade: websocket\r\n' +
          'a: 1\r\nb: 2\r\nb: 3\r\n\r\n',
      );
    });

    it('drops a value that would start a new header line', () => {
      const head = upstreamRequestHead('/ws', 1, {
        ok: 'yes',
        evil: 'x\r\nx-plugin-user-id: root',
      });
      expect(head).toContain('ok: yes\r\n');
      expect(head).not.toContain('evil');
      expect(head).not.toContain('root');
    });
  });

  describe('parseResponseHead', () => {
    it('reads the status and lower-cases header names, joining repeats', () => {
      expect(
        parseResponseHead(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
            'Sec-WebSocket-Accept: k=\r\nX-A: 1\r\nx-a: 2',
        ),
      ).toEqual({
        statusCode: 101,
        headers: { upgrade: 'websocket', 'sec-websocket-accept': 'k=', 'x-a': '1, 2' },
      });
    });

    it('accepts HTTP/1.0 and a status line without a reason phrase', () => {
      expect(parseResponseHead('HTTP/1.0 403')?.statusCode).toBe(403);
    });

    it.each([
      ['not HTTP', 'SSH-2.0-OpenSSH\r\n'],
      ['HTTP/2 status line', 'HTTP/2 101\r\n'],
      ['two-digit status', 'HTTP/1.1 10 Nope'],
      ['a header line without a colon', 'HTTP/1.1 101 OK\r\nbroken line'],
      ['a header line starting with a colon', 'HTTP/1.1 101 OK\r\n: empty name'],
    ])('refuses %s', (_what, head) => {
      expect(parseResponseHead(head)).toBeUndefined();
    });

    it('keeps a header called __proto__ as a plain entry', () => {
      const answer = parseResponseHead('HTTP/1.1 101 OK\r\n__proto__: x');
      expect(answer?.headers['__proto__']).toBe('x');
      expect(Object.getPrototypeOf(answer?.headers)).toBeNull();
    });
  });

  describe('upstreamRefusal', () => {
    it('accepts a 101 without extensions', () => {
      expect(upstreamRefusal({ statusCode: 101, headers: {} })).toBeUndefined();
    });

    it('refuses any other status, naming it', () => {
      expect(upstreamRefusal({ statusCode: 403, headers: {} })).toBe(
        'plugin answered the handshake with 403',
      );
    });

    it('refuses an extension Portico never offered', () => {
      expect(
        upstreamRefusal({
          statusCode: 101,
          headers: { 'sec-websocket-extensions': 'permessage-deflate' },
        }),
      ).toBe('plugin negotiated an extension that was not offered');
    });
  });

  describe('clientSwitchingProtocols', () => {
    const answer = (
      headers: Record<string, string>,
    ): { statusCode: number; headers: typeof headers } => ({
      statusCode: 101,
      headers: { 'sec-websocket-accept': 'ACCEPT=', ...headers },
    });

    it("copies the plugin's accept key and its chosen subprotocol", () => {
      expect(
        clientSwitchingProtocols(answer({ 'sec-websocket-protocol': 'chat' }), ['chat'], 'header'),
      ).toBe(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Accept: ACCEPT=\r\nSec-WebSocket-Protocol: chat\r\n\r\n',
      );
    });

    it('answers `portico` to a subprotocol-token client when the plugin chose none', () => {
      expect(clientSwitchingProtocols(answer({}), [PORTICO_SUBPROTOCOL], 'subprotocol')).toContain(
        `Sec-WebSocket-Protocol: ${PORTICO_SUBPROTOCOL}\r\n`,
      );
    });

    it('answers no subprotocol when none was chosen and the token came another way', () => {
      expect(clientSwitchingProtocols(answer({}), [PORTICO_SUBPROTOCOL], 'query')).not.toContain(
        'Sec-WebSocket-Protocol',
      );
    });
  });

  describe('refusalProtocol (ws handleProtocols for refused clients)', () => {
    it('prefers `portico`', () => {
      expect(refusalProtocol(new Set([BEARER, 'chat', PORTICO_SUBPROTOCOL]))).toBe(
        PORTICO_SUBPROTOCOL,
      );
    });

    it('else the first offered that is not the bearer entry', () => {
      expect(refusalProtocol(new Set([BEARER, 'chat', 'v2']))).toBe('chat');
    });

    it('never echoes the bearer entry (the token) back', () => {
      expect(refusalProtocol(new Set([BEARER]))).toBe(false);
    });
  });

  describe('httpRejection', () => {
    it('is a complete JSON error response that closes the connection', () => {
      const text = httpRejection(404, 'no WebSocket endpoint here');
      const [head, body] = text.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 404 Not Found\r\nConnection: close\r\n/);
      expect(JSON.parse(body ?? '')).toEqual({
        statusCode: 404,
        error: 'Not Found',
        message: 'no WebSocket endpoint here',
      });
      expect(head).toContain(`Content-Length: ${Buffer.byteLength(body ?? '')}`);
    });

    it('counts Content-Length in bytes, not characters', () => {
      const text = httpRejection(400, 'ünïcödé');
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      expect(text).toContain(`Content-Length: ${Buffer.byteLength(body)}\r\n`);
      expect(Buffer.byteLength(body)).toBeGreaterThan(body.length);
    });

    it('names the allowed method on a 405', () => {
      expect(httpRejection(405, 'use GET')).toContain('\r\nAllow: GET\r\n');
      expect(httpRejection(400, 'bad')).not.toContain('Allow:');
    });

    it('names the upgrade and the WebSocket version on a 426', () => {
      const head = httpRejection(426, 'unsupported').split('\r\n\r\n')[0] ?? '';
      expect(head.split('\r\n')).toEqual(
        expect.arrayContaining([
          'HTTP/1.1 426 Upgrade Required',
          'Connection: Upgrade, close',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
        ]),
      );
      expect(httpRejection(400, 'bad')).not.toContain('Sec-WebSocket-Version');
    });
  });

  describe('clientHandshakeFault', () => {
    const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
    const req = (headers: Record<string, string>, minor = 1, major = 1) => ({
      headers: { 'sec-websocket-version': '13', 'sec-websocket-key': KEY, ...headers },
      httpVersionMajor: major,
      httpVersionMinor: minor,
    });

    it('accepts a well-formed RFC 6455 handshake, over HTTP/1.1 or later', () => {
      expect(clientHandshakeFault(req({}))).toBeUndefined();
      expect(clientHandshakeFault(req({}, 0, 2))).toBeUndefined();
    });

    it('refuses HTTP/1.0, whose Upgrade a server must ignore, with 400', () => {
      expect(clientHandshakeFault(req({}, 0))).toEqual({
        status: 400,
        message: 'a WebSocket upgrade needs HTTP/1.1',
      });
    });

    it.each([['8'], ['12'], [''], ['13, 8'], ['abc']])(
      'answers Sec-WebSocket-Version %j with 426',
      (version) => {
        expect(clientHandshakeFault(req({ 'sec-websocket-version': version }))?.status).toBe(426);
      },
    );

    it('answers a missing version with 426', () => {
      const headers: Record<string, string> = { 'sec-websocket-key': KEY };
      expect(clientHandshakeFault({ ...req({}), headers })?.status).toBe(426);
    });

    it.each([
      [''],
      ['short'],
      [`${KEY}, ${KEY}`],
      ['dGhlIHNhbXBsZSBub25jZQ='],
      ['dGhlIHNhbXBsZSBub25jZQ==x'],
    ])('refuses Sec-WebSocket-Key %j with 400', (key) => {
      expect(clientHandshakeFault(req({ 'sec-websocket-key': key }))).toEqual({
        status: 400,
        message: 'missing or invalid Sec-WebSocket-Key',
      });
    });
  });
});
