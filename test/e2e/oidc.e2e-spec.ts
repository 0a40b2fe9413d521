import { randomBytes } from 'node:crypto';

import {
  CookieJar,
  OidcProvider,
  signInThroughPortico,
  startOidcProvider,
} from '../helpers/oidc-provider';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';

/**
 * Single sign-on against a real OpenID provider (npm oidc-provider in its own process):
 * the code flow with PKCE, state and nonce through Portico's /api/auth routes, the session
 * cookie, CSRF-protected session tokens, refresh, revocation and sign-out.
 */
describe('single sign-on (OpenID Connect)', () => {
  let provider: OidcProvider;
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  const accounts = {
    alice: { name: 'Alice Doe', groups: ['portico-admins', 'staff'] },
    bob: { name: 'Bob', groups: ['staff'] },
  };

  beforeAll(async () => {
    provider = await startOidcProvider({ clients: [], accounts, groupsClaim: 'always' });
    plugins = pluginsDirWith(['echo']);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: {
        OIDC_ISSUER: provider.issuer,
        OIDC_CLIENT_ID: 'portico',
        OIDC_ROLE_MAP: 'portico-admins=admin',
        SECRETS_KEY: randomBytes(32).toString('base64'),
      },
    });
    await provider.setClient({
      client_id: 'portico',
      redirect_uris: [`${t.baseUrl}/api/auth/callback`],
      post_logout_redirect_uris: [`${t.baseUrl}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
  });

  afterAll(async () => {
    await t?.close();
    await provider?.stop();
    plugins?.remove();
  });

  /** Signs `login` in through Portico and the provider; returns the browser's Portico cookies. */
  async function signIn(
    login: string,
    returnTo = '/',
  ): Promise<{ jar: CookieJar; location: string }> {
    const started = await signInThroughPortico(
      provider,
      `${t.baseUrl}/api/auth/login?returnTo=${encodeURIComponent(returnTo)}`,
      login,
    );
    const res = await started.porticoCookies.fetch(started.callbackUrl);
    expect(res.status).toBe(303);
    return { jar: started.porticoCookies, location: res.headers.get('location') ?? '' };
  }

  async function token(jar: CookieJar): Promise<Response> {
    return jar.fetch(`${t.baseUrl}/api/auth/token`, {
      method: 'POST',
      headers: { 'x-csrf-token': jar.get('portico_csrf') ?? '' },
    });
  }

  it('signs a user in and gives the console short-lived tokens that work as bearer', async () => {
    const { jar, location } = await signIn('alice', '/?tab=echo');
    expect(location).toBe('/?tab=echo');
    expect(jar.names().sort()).toEqual(['portico_csrf', 'portico_session']);
    const res = await token(jar);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { token: string; expiresAt: string; user: unknown };
    expect(body.user).toEqual({ id: 'alice', name: 'Alice Doe', roles: ['admin'], admin: true });
    const me = await fetch(`${t.baseUrl}/api/me`, {
      headers: { authorization: `Bearer ${body.token}` },
    });
    expect(await me.json()).toMatchObject({ id: 'alice', admin: true });
    const session = await jar.fetch(`${t.baseUrl}/api/auth/session`);
    expect(await session.json()).toMatchObject({ oidc: true, signedIn: true });
  });
});
