import { bodyFraming, forwardableHeaders } from '../../../src/plugins/proxy/forwarded-headers';

describe('forwardableHeaders', () => {
  const client = {
    host: 'portico.example',
    connection: 'Upgrade, X-Secret-Hop',
    upgrade: 'websocket',
    authorization: 'Bearer token',
    cookie: 'portico_token=abc',
    forwarded: 'for=1.2.3.4',
    'x-forwarded-for': '6.6.6.6',
    'x-plugin-user-id': 'mallory',
    'x-secret-hop': 'named by Connection',
    'sec-websocket-key': 'k==',
    'sec-websocket-protocol': 'portico, bearer.abc',
    'accept-language': 'en',
    'set-cookie': ['a=1', 'b=2'],
  };

  it('drops hop-by-hop, credential, spoofable and Connection-named headers', () => {
    expect(forwardableHeaders(client, [])).toEqual({
      'sec-websocket-key': 'k==',
      'sec-websocket-protocol': 'portico, bearer.abc',
      'accept-language': 'en',
      'set-cookie': ['a=1', 'b=2'],
    });
  });

  it('drops the names in omit and adds the extras in order, later ones winning', () => {
    const out = forwardableHeaders(
      client,
      [
        { 'x-forwarded-for': '10.0.0.1', 'x-plugin-user-id': 'alice' },
        { 'x-plugin-user-id': 'alice%20b' },
      ],
      new Set(['sec-websocket-protocol']),
    );
    expect(out['sec-websocket-protocol']).toBeUndefined();
    expect(out['x-forwarded-for']).toBe('10.0.0.1');
    expect(out['x-plugin-user-id']).toBe('alice%20b');
    expect(out.authorization).toBeUndefined();
  });

  it('does not drop a header just because Connection lists a hop-by-hop token', () => {
    const out = forwardableHeaders({ connection: 'keep-alive, upgrade', 'x-app': '1' }, []);
    expect(out).toEqual({ 'x-app': '1' });
  });

  it('leaves the extras unchanged', () => {
    const extra = Object.freeze({ 'x-plugin-user-id': 'alice' });
    forwardableHeaders({ 'x-plugin-user-id': 'mallory' }, [extra]);
    expect(extra).toEqual({ 'x-plugin-user-id': 'alice' });
  });
});

describe('forwardableHeaders against smuggling and spoofing', () => {
  it('never copies framing headers, and a Connection header cannot name them away', () => {
    const out = forwardableHeaders(
      {
        connection: 'keep-alive, Content-Length, Transfer-Encoding, Sec-WebSocket-Key, x-app',
        'content-length': '5',
        'transfer-encoding': 'chunked',
        'sec-websocket-key': 'k==',
        'x-app': '1',
      },
      [],
    );
    expect(out).toEqual({ 'sec-websocket-key': 'k==' });
  });

  it.each([
    'x_plugin_user_id',
    'X_Plugin_User_Roles',
    'x_forwarded_for',
    'x-real-ip',
    'x_real_ip',
    'true-client-ip',
    'cf-connecting-ip',
    'x-client-ip',
    'x-cluster-client-ip',
  ])('drops %s', (name) => {
    expect(forwardableHeaders({ [name.toLowerCase()]: 'spoofed' }, [])).toEqual({});
  });
});

describe('forwardableHeaders with a header called __proto__', () => {
  it('keeps it as a plain name and never changes a prototype', () => {
    const headers = JSON.parse('{"__proto__": "x", "x-app": "1"}') as Record<string, string>;
    const out = forwardableHeaders(headers, []);
    expect(Object.getPrototypeOf(out)).toBeNull();
    expect(Object.keys(out).sort()).toEqual(['__proto__', 'x-app']);
  });
});

describe('bodyFraming', () => {
  it.each([
    [{}, { kind: 'none' }],
    [{ 'content-length': '0' }, { kind: 'none' }],
    [{ 'content-length': '12' }, { kind: 'length', length: 12 }],
    [{ 'content-length': '12, 12' }, { kind: 'length', length: 12 }],
    [{ 'transfer-encoding': 'chunked' }, { kind: 'chunked' }],
    [{ 'transfer-encoding': ' Chunked ' }, { kind: 'chunked' }],
  ])('reads %j as %j', (headers, framing) => {
    expect(bodyFraming(headers)).toEqual(framing);
  });

  it.each([
    [{ 'content-length': '5', 'transfer-encoding': 'chunked' }],
    [{ 'content-length': '5, 6' }],
    [{ 'content-length': '-1' }],
    [{ 'content-length': '0x10' }],
    [{ 'content-length': '1e3' }],
    [{ 'content-length': '99999999999999999' }],
    [{ 'transfer-encoding': 'gzip, chunked' }],
    [{ 'transfer-encoding': 'chunked, chunked' }],
    [{ 'transfer-encoding': 'identity' }],
  ])('refuses %j as ambiguous', (headers) => {
    expect(bodyFraming(headers)).toBeUndefined();
  });
});
