import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';

import { BaseClient, generators, Issuer } from 'openid-client';

import {
  CookieJar,
  OidcProvider,
  signInThroughPortico,
  signInThroughProvider,
  signOutThroughProvider,
  startOidcProvider,
} from '../helpers/oidc-provider';

const REDIRECT = 'http://127.0.0.1:9/api/auth/callback';
const SECRET = 'portico-test-secret';

interface AuthorizeOptions {
  scope?: string;
  /** `consent` asks for the consent page again (the provider's rule for offline_access). */
  prompt?: string;
  cookies?: CookieJar;
  cancel?: boolean;
}

/** A client for `provider` as a relying party sees it (discovery, then client metadata). */
async function clientOf(provider: OidcProvider, clientId = 'portico'): Promise<BaseClient> {
  const issuer = await Issuer.discover(provider.issuer);
  return new issuer.Client({
    client_id: clientId,
    client_secret: SECRET,
    redirect_uris: [REDIRECT],
    response_types: ['code'],
  });
}

/** Starts the code flow with PKCE, state and nonce, and signs `login` in at the provider. */
async function authorize(provider: OidcProvider, login: string, options: AuthorizeOptions = {}) {
  const c = await clientOf(provider);
  const verifier = generators.codeVerifier();
  const checks = {
    code_verifier: verifier,
    state: generators.state(),
    nonce: generators.nonce(),
  };
  const url = c.authorizationUrl({
    scope: options.scope ?? 'openid profile email groups offline_access',
    code_challenge: generators.codeChallenge(verifier),
    code_challenge_method: 'S256',
    state: checks.state,
    nonce: checks.nonce,
    ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
  });
  const back = await signInThroughProvider(provider, url, login, {
    cookies: options.cookies,
    cancel: options.cancel,
  });
  return { c, checks, back, params: c.callbackParams(back) };
}

/** Signs `login` in the way Portico does (no offline_access, no prompt) and redeems the code. */
async function signIn(provider: OidcProvider, login: string, cookies?: CookieJar) {
  const { c, checks, params } = await authorize(provider, login, {
    scope: 'openid profile email groups',
    cookies,
  });
  return { c, tokens: await c.callback(REDIRECT, params, checks) };
}

const confidentialClient = {
  client_id: 'portico',
  client_secret: SECRET,
  redirect_uris: [REDIRECT],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

/**
 * The test OpenID provider the sign-in suites use (npm `oidc-provider` in its own process),
 * driven by a certified client library (openid-client 5, CommonJS): discovery, the code flow
 * with PKCE, state and nonce, group claims, refresh-token rotation, and the failures a relying
 * party must catch; then the controls tests steer it with (revoke an account, change groups,
 * backdate ID tokens, count requests).
 */
describe('the test OpenID provider', () => {
  let provider: OidcProvider;

  beforeAll(async () => {
    provider = await startOidcProvider({
      clients: [confidentialClient],
      accounts: {
        alice: { name: 'Alice Liddell', groups: ['portico-admins'] },
        bob: { name: 'Bob', groups: [] },
        carol: { name: 'Carol', groups: ['readers'] },
        dave: { name: 'Dave', groups: ['readers'] },
      },
    });
  }, 30_000);

  afterAll(async () => {
    await provider?.stop();
  });

  it('signs a user in: code flow with PKCE, state and nonce; the ID token carries the groups', async () => {
    const { c, checks, back, params } = await authorize(provider, 'alice', { prompt: 'consent' });
    expect(back.startsWith(REDIRECT)).toBe(true);
    const tokens = await c.callback(REDIRECT, params, checks);
    expect(tokens.claims()).toMatchObject({
      iss: provider.issuer,
      aud: 'portico',
      sub: 'alice',
      name: 'Alice Liddell',
      groups: ['portico-admins'],
      nonce: checks.nonce,
    });
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('a tampered state, a replayed code and a wrong nonce are refused', async () => {
    const { c, checks, params } = await authorize(provider, 'bob', { prompt: 'consent' });
    await expect(c.callback(REDIRECT, params, { ...checks, state: 'other' })).rejects.toThrow(
      /state mismatch/,
    );
    await c.callback(REDIRECT, params, checks);
    await expect(c.callback(REDIRECT, params, checks)).rejects.toThrow(/invalid_grant/);
    const second = await authorize(provider, 'bob', { prompt: 'consent' });
    await expect(
      second.c.callback(REDIRECT, second.params, { ...second.checks, nonce: 'other' }),
    ).rejects.toThrow(/nonce mismatch/);
  });

  it('rotates refresh tokens: the new one works, the old one no longer does', async () => {
    const { c, checks, params } = await authorize(provider, 'alice', { prompt: 'consent' });
    const first = await c.callback(REDIRECT, params, checks);
    const refreshed = await c.refresh(first.refresh_token as string);
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    expect(refreshed.claims().sub).toBe('alice');
    await expect(c.refresh(first.refresh_token as string)).rejects.toThrow(/invalid_grant/);
  });

  it('refuses an account it does not know', async () => {
    const c = await clientOf(provider);
    const verifier = generators.codeVerifier();
    const url = c.authorizationUrl({
      scope: 'openid',
      code_challenge: generators.codeChallenge(verifier),
      code_challenge_method: 'S256',
      state: generators.state(),
      nonce: generators.nonce(),
    });
    const back = await signInThroughProvider(provider, url, 'mallory').catch(
      (e: Error) => e.message,
    );
    // No account: the provider never issues a code (it reports an error instead).
    expect(String(back)).not.toMatch(/[?&]code=/);
    expect(String(back)).toMatch(/answered 500|[?&]error=/);
  });

  it('issues a refresh token without offline_access or prompt=consent, as Keycloak does', async () => {
    const { c, tokens } = await signIn(provider, 'bob');
    expect(tokens.scope?.split(' ')).not.toContain('offline_access');
    expect(tokens.refresh_token).toEqual(expect.any(String));
    const refreshed = await c.refresh(tokens.refresh_token as string);
    expect(refreshed.claims().sub).toBe('bob');
  });

  it('sends the browser back with error=access_denied when the user cancels', async () => {
    const { back, params } = await authorize(provider, 'bob', { cancel: true });
    expect(back.startsWith(REDIRECT)).toBe(true);
    expect(params.error).toBe('access_denied');
    expect(params.code).toBeUndefined();
  });

  it('revokeAccount: every refresh token of the account fails with invalid_grant, others still work', async () => {
    const browser = new CookieJar();
    const first = await signIn(provider, 'carol', browser);
    const second = await signIn(provider, 'carol');
    const other = await signIn(provider, 'dave');
    // Signed in at the provider: the same browser comes back silently, whoever it names.
    const silent = await signIn(provider, 'dave', browser);
    expect(silent.tokens.claims().sub).toBe('carol');

    const removed = await provider.revokeAccount('carol');
    expect(removed).toMatchObject({
      Grant: 2,
      Session: 2,
      RefreshToken: expect.any(Number),
      AccessToken: expect.any(Number),
    });

    for (const tokens of [first.tokens, second.tokens, silent.tokens]) {
      await expect(first.c.refresh(tokens.refresh_token as string)).rejects.toThrow(
        /invalid_grant/,
      );
    }
    const daves = await other.c.refresh(other.tokens.refresh_token as string);
    expect(daves.claims().sub).toBe('dave');
    // The provider session ended too: the same browser must sign in again, as someone else now.
    const again = await signIn(provider, 'dave', browser);
    expect(again.tokens.claims().sub).toBe('dave');
  });

  it('setGroups: a refreshed ID token and userinfo carry the new groups', async () => {
    const { c, tokens } = await signIn(provider, 'dave');
    expect(tokens.claims().groups).toEqual(['readers']);
    await provider.setGroups('dave', ['portico-admins', 'ops']);
    try {
      const refreshed = await c.refresh(tokens.refresh_token as string);
      expect(refreshed.claims().groups).toEqual(['portico-admins', 'ops']);
      const info = await c.userinfo(refreshed.access_token as string);
      expect(info.groups).toEqual(['portico-admins', 'ops']);
    } finally {
      await provider.setGroups('dave', ['readers']);
    }
    await expect(provider.setGroups('nobody', [])).rejects.toThrow(/no account nobody/);
  });

  it('setClockOffset(-7200): ID tokens from the code and from a refresh are already expired', async () => {
    const before = await signIn(provider, 'bob');
    await provider.setClockOffset(-7200);
    try {
      const { c, checks, params } = await authorize(provider, 'bob', {
        scope: 'openid profile',
      });
      await expect(c.callback(REDIRECT, params, checks)).rejects.toThrow(
        /JWT expired, now \d+, exp \d+/,
      );
      await expect(before.c.refresh(before.tokens.refresh_token as string)).rejects.toThrow(
        /JWT expired/,
      );
    } finally {
      await provider.setClockOffset(0);
    }
    const after = await signIn(provider, 'bob');
    expect(after.tokens.claims().exp).toBeGreaterThan(Date.now() / 1000);
  });

  it('stats: counts token-endpoint requests by grant type, refused ones apart', async () => {
    await provider.resetStats();
    const { c, tokens } = await signIn(provider, 'bob');
    const refreshed = await c.refresh(tokens.refresh_token as string);
    // The rotated-out refresh token: refused.
    await expect(c.refresh(tokens.refresh_token as string)).rejects.toThrow(/invalid_grant/);
    await c.userinfo(refreshed.access_token as string).catch(() => undefined);
    const stats = await provider.stats();
    expect(stats.tokenRequests).toEqual({ authorization_code: 1, refresh_token: 2 });
    expect(stats.tokenErrors).toEqual({ refresh_token: 1 });
    expect(stats.requests).toMatchObject({ token: 3, authorization: 1, userinfo: 1 });
    await provider.resetStats();
    expect((await provider.stats()).tokenRequests).toEqual({});
  });
});

/**
 * A relying party in front of the provider, shaped like Portico's login route: it sets its own
 * `portico_oidc` cookie (Path=/api/auth, here the checks in clear) and redirects to the
 * provider. The test plays its callback, the way a Portico test does.
 */
describe('the test OpenID provider with a relying party that redirects to it', () => {
  let provider: OidcProvider;
  let rp: Server;
  let rpBase: string;
  let rpClient: BaseClient;

  beforeAll(async () => {
    provider = await startOidcProvider({ clients: [], accounts: { alice: { groups: ['ops'] } } });
    rp = createServer((req, res) => {
      const url = new URL(req.url ?? '/', rpBase);
      if (url.pathname !== '/api/auth/login') {
        res.writeHead(404).end();
        return;
      }
      const checks = {
        code_verifier: generators.codeVerifier(),
        state: generators.state(),
        nonce: generators.nonce(),
      };
      const location = rpClient.authorizationUrl({
        scope: 'openid profile groups',
        code_challenge: generators.codeChallenge(checks.code_verifier),
        code_challenge_method: 'S256',
        state: checks.state,
        nonce: checks.nonce,
      });
      const cookie = Buffer.from(JSON.stringify(checks)).toString('base64url');
      res
        .writeHead(302, {
          location,
          'set-cookie': `portico_oidc=${cookie}; Path=/api/auth; HttpOnly; SameSite=Lax; Max-Age=600`,
        })
        .end();
    });
    await new Promise<void>((resolve) => rp.listen(0, '127.0.0.1', resolve));
    rpBase = `http://127.0.0.1:${(rp.address() as AddressInfo).port}`;
    // Registered now that the relying party's port is known.
    await provider.setClient({
      ...confidentialClient,
      client_id: 'rp',
      redirect_uris: [`${rpBase}/api/auth/callback`],
      post_logout_redirect_uris: [`${rpBase}/`],
    });
    const issuer = await Issuer.discover(provider.issuer);
    rpClient = new issuer.Client({
      client_id: 'rp',
      client_secret: SECRET,
      redirect_uris: [`${rpBase}/api/auth/callback`],
      post_logout_redirect_uris: [`${rpBase}/`],
      response_types: ['code'],
    });
  }, 30_000);

  afterAll(async () => {
    rp?.closeAllConnections();
    await new Promise((resolve) => (rp === undefined ? resolve(undefined) : rp.close(resolve)));
    await provider?.stop();
  });

  it('signInThroughPortico keeps each side’s cookies apart; signing out ends the refresh token', async () => {
    const signIn = await signInThroughPortico(
      provider,
      `${rpBase}/api/auth/login?returnTo=/x`,
      'alice',
    );
    expect(signIn.authorizationUrl.startsWith(`${provider.issuer}/`)).toBe(true);
    expect(signIn.callbackUrl.startsWith(`${rpBase}/api/auth/callback?`)).toBe(true);
    expect(signIn.porticoCookies.names()).toEqual(['portico_oidc']);
    expect(signIn.porticoCookies.header(`${rpBase}/api/auth/callback`)).toMatch(/^portico_oidc=/);
    expect(signIn.porticoCookies.header(`${rpBase}/`)).toBe('');
    expect(signIn.providerCookies.names().length).toBeGreaterThan(0);
    expect(signIn.providerCookies.names()).not.toContain('portico_oidc');

    const checks = JSON.parse(
      Buffer.from(signIn.porticoCookies.get('portico_oidc') as string, 'base64url').toString(),
    ) as { code_verifier: string; state: string; nonce: string };
    const tokens = await rpClient.callback(
      `${rpBase}/api/auth/callback`,
      rpClient.callbackParams(signIn.callbackUrl),
      checks,
    );
    expect(tokens.claims()).toMatchObject({ sub: 'alice', groups: ['ops'] });

    const endSession = rpClient.endSessionUrl({
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: `${rpBase}/`,
      state: 'bye',
    });
    const after = await signOutThroughProvider(provider, endSession, signIn.providerCookies);
    expect(after).toBe(`${rpBase}/?state=bye`);
    await expect(rpClient.refresh(tokens.refresh_token as string)).rejects.toThrow(/invalid_grant/);
  });

  it('refuses a post_logout_redirect_uri that is not registered', async () => {
    const endSession = rpClient.endSessionUrl({
      post_logout_redirect_uri: `${rpBase}/elsewhere`,
    });
    await expect(signOutThroughProvider(provider, endSession)).rejects.toThrow(
      /answered 400.*post_logout_redirect_uri not registered/s,
    );
  });

  it('setClient refuses metadata the provider refuses', async () => {
    await expect(
      provider.setClient({ client_id: 'bad', redirect_uris: ['not a url'] }),
    ).rejects.toThrow(/invalid client metadata/);
  });
});

/** Start options: no refresh tokens, groups without their scope, a clock that is behind. */
describe('the test OpenID provider started with refreshTokens false, groups always, a clock offset', () => {
  let provider: OidcProvider;

  beforeAll(async () => {
    provider = await startOidcProvider({
      clients: [confidentialClient],
      accounts: { alice: { groups: ['portico-admins'] } },
      refreshTokens: false,
      groupsClaim: 'always',
      clockOffsetSeconds: -7200,
    });
  }, 30_000);

  afterAll(async () => {
    await provider?.stop();
  });

  it('issues ID tokens that expired already, groups in them, and no refresh token', async () => {
    const { c, checks, params } = await authorize(provider, 'alice', { scope: 'openid' });
    // The code exchanged without checking the ID token, to look at it.
    expect(params.state).toBe(checks.state);
    const tokens = await c.grant({
      grant_type: 'authorization_code',
      code: params.code,
      redirect_uri: REDIRECT,
      code_verifier: checks.code_verifier,
    });
    expect(tokens.refresh_token).toBeUndefined();
    const claims = tokens.claims();
    expect(claims.groups).toEqual(['portico-admins']);
    expect(claims.exp).toBeLessThan(Date.now() / 1000 - 3000);
    expect(claims.iat).toBeLessThan(Date.now() / 1000 - 7000);

    await provider.setClockOffset(0);
    const later = await authorize(provider, 'alice', { scope: 'openid' });
    const valid = await later.c.callback(REDIRECT, later.params, later.checks);
    expect(valid.claims().groups).toEqual(['portico-admins']);
    expect(valid.refresh_token).toBeUndefined();
  });
});
