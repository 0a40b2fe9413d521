import { http } from '../helpers/http-client';
import { craftToken, generateSigningKey, JwksServer, signWith } from '../helpers/jwks-server';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect } from '../helpers/ws-client';

const ISSUER = 'https://id.example';
const AUDIENCE = 'portico';
const CLAIMS = { sub: 'alice', name: 'Alice', roles: ['user'], iss: ISSUER, aud: AUDIENCE };

function bearerProtocol(token: string): string {
  return `base64url.bearer.authorization.portico.${Buffer.from(token).toString('base64url')}`;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe('tokens from JWT_JWKS_URL, without JWT_SECRET', () => {
  let jwks: JwksServer;
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    jwks = await JwksServer.start();
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { JWT_SECRET: '', JWT_JWKS_URL: jwks.url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
    });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterAll(async () => {
    await t.close();
    plugins.remove();
    await jwks.close();
  });

  it('runs with no JWT_SECRET at all: none is generated when JWT_JWKS_URL is set', () => {
    expect(t.config.JWT_SECRET).toBeUndefined();
    expect(t.config.JWT_JWKS_URL).toBe(jwks.url);
  });

  it('answers GET /api/plugins with an RS256 token', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins', { token: signWith(jwks.rsa, CLAIMS) });
    expect(res.status).toBe(200);
    expect(res.json).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'echo' })]));
  });

  it('opens /plugin-ws/echo with an ES256 token, as a header or a subprotocol', async () => {
    const token = signWith(jwks.ec, CLAIMS);
    for (const options of [{ token }, { protocols: [bearerProtocol(token), 'portico'] }]) {
      const r = await connect(`${t.wsUrl}/plugin-ws/echo`, options);
      expect(r.kind).toBe('open');
      if (r.kind !== 'open') continue;
      r.conn.ws.send('ping');
      expect((await r.conn.next()).data.toString()).toBe('ping');
      r.conn.ws.terminate();
    }
  });

  it('tells the plugin who the RS256 token stands for', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins/echo/rpc/whoami', {
      token: signWith(jwks.rsa, CLAIMS),
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ id: 'alice', name: 'Alice' });
  });

  it.each([
    ['HS256 with the test secret', () => t.token({ issuer: ISSUER, audience: AUDIENCE })],
    [
      'HS256 with the RSA public key as HMAC secret',
      () =>
        craftToken(
          { alg: 'HS256', typ: 'JWT', kid: jwks.rsa.kid },
          { ...CLAIMS, exp: nowSeconds() + 300 },
          jwks.rsa.publicKey.export({ type: 'spki', format: 'pem' }),
        ),
    ],
    [
      'alg none',
      () => craftToken({ alg: 'none', kid: jwks.rsa.kid }, { ...CLAIMS, roles: ['admin'] }),
    ],
    ['an unknown kid', () => signWith(generateSigningKey('RS256'), CLAIMS)],
    [
      'an ES256 signature under the RSA kid',
      () => signWith(jwks.ec, CLAIMS, { kid: jwks.rsa.kid }),
    ],
    ['an expired RS256 token', () => signWith(jwks.rsa, { ...CLAIMS, exp: nowSeconds() - 60 })],
    [
      'a not yet valid ES256 token',
      () => signWith(jwks.ec, { ...CLAIMS, nbf: nowSeconds() + 120 }),
    ],
    ['another audience', () => signWith(jwks.rsa, { ...CLAIMS, aud: 'elsewhere' })],
  ])('answers 401 over HTTP and WebSocket for %s', async (_what, make) => {
    const token = make();
    const res = await http(t.baseUrl, 'GET', '/api/plugins', { token });
    expect(res.status).toBe(401);
    expect(res.body.toString()).not.toContain(token.split('.')[1]);
    const r = await connect(`${t.wsUrl}/plugin-ws/echo`, { token });
    expect(r).toMatchObject({ kind: 'rejected', status: 401 });
  });

  it('fetched the key set about once for all of the above', () => {
    expect(jwks.requests).toBeGreaterThanOrEqual(1);
    expect(jwks.requests).toBeLessThanOrEqual(2);
  });
});

describe('JWT_JWKS_URL unreachable', () => {
  let jwks: JwksServer;
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    // Keys exist, but nothing serves them any more.
    jwks = await JwksServer.start();
    await jwks.close();
    plugins = pluginsDirWith(['bundled:echo']);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { JWT_SECRET: '', JWT_JWKS_URL: jwks.url },
    });
  });

  afterAll(async () => {
    await t.close();
    plugins.remove();
  });

  // That a refused fetch fails at once rather than at the fetch timeout is checked, by the path
  // taken rather than by a clock, in test/unit/auth/token-verifier.jwks.spec.ts.
  it('answers 401 over HTTP and WebSocket, and keeps serving', async () => {
    const token = signWith(jwks.rsa, { sub: 'alice' });
    const res = await http(t.baseUrl, 'GET', '/api/plugins', { token });
    expect(res.json).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: 'signing keys unavailable',
    });
    const r = await connect(`${t.wsUrl}/plugin-ws/echo`, { token });
    expect(r).toMatchObject({ kind: 'rejected', status: 401 });
    expect((await http(t.baseUrl, 'GET', '/healthz')).status).toBe(200);
  });
});
