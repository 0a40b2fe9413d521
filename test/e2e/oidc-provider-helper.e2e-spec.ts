import { generators, Issuer } from 'openid-client';

import { OidcProvider, signInThroughProvider, startOidcProvider } from '../helpers/oidc-provider';

const REDIRECT = 'http://127.0.0.1:9/api/auth/callback';

/**
 * The test OpenID provider the sign-in suites use (npm `oidc-provider` in its own process),
 * driven by a certified client library (openid-client 5, CommonJS): discovery, the code flow
 * with PKCE, state and nonce, group claims, refresh-token rotation, and the failures a relying
 * party must catch.
 */
describe('the test OpenID provider', () => {
  let provider: OidcProvider;

  beforeAll(async () => {
    provider = await startOidcProvider({
      clients: [
        {
          client_id: 'portico',
          client_secret: 'portico-test-secret',
          redirect_uris: [REDIRECT],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        },
      ],
      accounts: {
        alice: { name: 'Alice Liddell', groups: ['portico-admins'] },
        bob: { name: 'Bob', groups: [] },
      },
    });
  }, 30_000);

  afterAll(async () => {
    await provider?.stop();
  });

  const client = async () => {
    const issuer = await Issuer.discover(provider.issuer);
    return new issuer.Client({
      client_id: 'portico',
      client_secret: 'portico-test-secret',
      redirect_uris: [REDIRECT],
      response_types: ['code'],
    });
  };

  const authorize = async (login: string) => {
    const c = await client();
    const verifier = generators.codeVerifier();
    const checks = {
      code_verifier: verifier,
      state: generators.state(),
      nonce: generators.nonce(),
    };
    const url = c.authorizationUrl({
      scope: 'openid profile email groups offline_access',
      code_challenge: generators.codeChallenge(verifier),
      code_challenge_method: 'S256',
      state: checks.state,
      nonce: checks.nonce,
      prompt: 'consent',
    });
    const back = await signInThroughProvider(provider, url, login);
    return { c, checks, back, params: c.callbackParams(back) };
  };

  it('signs a user in: code flow with PKCE, state and nonce; the ID token carries the groups', async () => {
    const { c, checks, back, params } = await authorize('alice');
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
    const { c, checks, params } = await authorize('bob');
    await expect(c.callback(REDIRECT, params, { ...checks, state: 'other' })).rejects.toThrow(
      /state mismatch/,
    );
    await c.callback(REDIRECT, params, checks);
    await expect(c.callback(REDIRECT, params, checks)).rejects.toThrow(/invalid_grant/);
    const second = await authorize('bob');
    await expect(
      second.c.callback(REDIRECT, second.params, { ...second.checks, nonce: 'other' }),
    ).rejects.toThrow(/nonce mismatch/);
  });

  it('rotates refresh tokens: the new one works, the old one no longer does', async () => {
    const { c, checks, params } = await authorize('alice');
    const first = await c.callback(REDIRECT, params, checks);
    const refreshed = await c.refresh(first.refresh_token as string);
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    expect(refreshed.claims().sub).toBe('alice');
    await expect(c.refresh(first.refresh_token as string)).rejects.toThrow(/invalid_grant/);
  });

  it('refuses an account it does not know', async () => {
    const c = await client();
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
});
