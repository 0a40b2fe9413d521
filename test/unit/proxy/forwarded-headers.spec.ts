import { forwardableHeaders } from '../../../src/plugins/proxy/forwarded-headers';

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
