import { randomBytes } from 'node:crypto';

import { BEARER_SUBPROTOCOL_PREFIX } from '../../src/auth/credential-extractor';
import { http } from '../helpers/http-client';
import {
  CookieJar,
  OidcProvider,
  OidcTestClient,
  signInThroughProvider,
  signOutThroughProvider,
  startOidcProvider,
} from '../helpers/oidc-provider';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import {
  ACCESS_TOKEN_TTL_S,
  clockReaches,
  CSRF_COOKIE,
  LOGIN_COOKIE,
  postAuth,
  REFRESH_DUE_MS,
  SESSION_COOKIE,
  TokenAnswer,
} from '../helpers/sso';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect, open, WsConnection } from '../helpers/ws-client';

/** SESSION_TOKEN_TTL_MS of the apps below (the smallest Portico accepts). */
const SESSION_TOKEN_TTL_MS = 5000;

const CALLBACK_PATH = '/api/auth/callback';

const accounts = {
  alice: { name: 'Alice Doe', groups: ['portico-admins', 'staff'] },
  bob: { name: 'Bob', groups: ['staff'] },
  /** Revoked at the provider by the refresh test: nobody else signs in as carol. */
  carol: { name: 'Carol', groups: ['portico-admins'] },
};

/** A browser signed in to one Portico: its cookies there and at the provider. */
interface SignedIn {
  jar: CookieJar;
  providerCookies: CookieJar;
  /** Where Portico's callback sent the browser (its 303 Location). */
  location: string;
  /** The Set-Cookie lines of the callback's answer. */
  setCookies: string[];
  /** Where Portico sent the browser at the provider (state, nonce, code challenge). */
  authorizationUrl: string;
  /** The callback URL the provider sent the browser to (code and state). */
  callbackUrl: string;
  /** The sign-in transaction cookie the callback was called with. */
  loginCookie: string;
  /** When the callback answered: the provider's tokens are due for a refresh REFRESH_DUE_MS later. */
  at: number;
}

/** A client registration for a Portico at `base` (public client: PKCE only). */
function clientFor(clientId: string, base: string, redirectUri?: string): OidcTestClient {
  return {
    client_id: clientId,
    redirect_uris: [redirectUri ?? `${base}${CALLBACK_PATH}`],
    post_logout_redirect_uris: [`${base}/`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/** The environment that turns single sign-on on against `provider`. */
function oidcEnv(provider: OidcProvider, clientId: string): Record<string, string> {
  return {
    OIDC_ISSUER: provider.issuer,
    OIDC_CLIENT_ID: clientId,
    OIDC_ROLE_MAP: 'portico-admins=admin',
    SECRETS_KEY: randomBytes(32).toString('base64'),
  };
}

/** The Set-Cookie line for `name` among `lines` (undefined when none sets it). */
function cookieLine(lines: readonly string[], name: string): string | undefined {
  return lines.find((line) => line.startsWith(`${name}=`));
}

/** A Set-Cookie line's value and attributes (names lower-cased, `Max-Age=600` kept whole). */
function parseCookieLine(line: string | undefined): { value: string; attributes: string[] } {
  if (line === undefined) throw new Error('no such Set-Cookie line');
  const [pair, ...attributes] = line.split(';').map((part) => part.trim());
  return {
    value: pair.slice(pair.indexOf('=') + 1),
    attributes: attributes.map((a) => {
      const eq = a.indexOf('=');
      return eq < 0 ? a.toLowerCase() : `${a.slice(0, eq).toLowerCase()}=${a.slice(eq + 1)}`;
    }),
  };
}

/** The claims of a JWT (not verified: the test only reads what Portico put there). */
function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

/** `GET /api/auth/login` as a browser: the 3xx to the provider and the cookie it sets. */
async function beginSignIn(
  base: string,
  returnTo?: string,
  jar = new CookieJar(),
): Promise<{ jar: CookieJar; authorizationUrl: string; setCookies: string[] }> {
  const url = `${base}/api/auth/login${
    returnTo === undefined ? '' : `?returnTo=${encodeURIComponent(returnTo)}`
  }`;
  const res = await jar.fetch(url);
  const body = await res.text();
  const location = res.headers.get('location');
  if (res.status < 300 || res.status > 399 || location === null)
    throw new Error(`GET ${url} answered ${res.status}: ${body.slice(0, 500)}`);
  return {
    jar,
    authorizationUrl: new URL(location, url).toString(),
    setCookies: res.headers.getSetCookie(),
  };
}

/** The callback URL the provider chose, pointed at `base` (for a redirect URL not on loopback). */
function onPortico(callbackUrl: string, base: string): string {
  const url = new URL(callbackUrl);
  return `${base}${url.pathname}${url.search}`;
}

/** The `data-testid="sign-in-error"` text of Portico's sign-in failure page. */
function signInError(html: string): string | undefined {
  return /<p data-testid="sign-in-error">([^<]*)<\/p>/.exec(html)?.[1];
}

/**
 * The page the provider shows a browser with `cookies` at `url`, redirects followed (on the
 * provider only): its login form when it has no session for the browser.
 */
async function providerPage(url: string, cookies: CookieJar): Promise<string> {
  let next = url;
  for (let step = 0; step < 10; step++) {
    const res = await cookies.fetch(next);
    const location = res.headers.get('location');
    const body = await res.text();
    if (location === null) return body;
    next = new URL(location, next).toString();
    if (!next.startsWith(new URL(url).origin)) return `left the provider for ${next}`;
  }
  throw new Error('too many redirects at the provider');
}

/** `POST /api/auth/token` (or logout) as the console sends it: session cookie + X-CSRF-Token. */

describe('single sign-on (OpenID Connect)', () => {
  let provider: OidcProvider;

  /** Signs `login` in at the Portico on `base` through the provider; the callback must answer 303. */
  async function signIn(
    base: string,
    login: string,
    options: { returnTo?: string; jar?: CookieJar; providerCookies?: CookieJar } = {},
  ): Promise<SignedIn> {
    const providerCookies = options.providerCookies ?? new CookieJar();
    const begun = await beginSignIn(base, options.returnTo, options.jar);
    const loginCookie = begun.jar.get(LOGIN_COOKIE) ?? '';
    const callbackUrl = await signInThroughProvider(provider, begun.authorizationUrl, login, {
      cookies: providerCookies,
    });
    const res = await begun.jar.fetch(onPortico(callbackUrl, base));
    const body = await res.text();
    if (res.status !== 303)
      throw new Error(`the callback answered ${res.status}: ${signInError(body) ?? body}`);
    return {
      jar: begun.jar,
      providerCookies,
      location: res.headers.get('location') ?? '',
      setCookies: res.headers.getSetCookie(),
      authorizationUrl: begun.authorizationUrl,
      callbackUrl,
      loginCookie,
      at: Date.now(),
    };
  }

  /** A token for the session (must be 200). */
  async function tokenFor(base: string, jar: CookieJar): Promise<TokenAnswer> {
    const res = await postAuth(base, jar, 'token');
    const body = (await res.json()) as TokenAnswer;
    if (res.status !== 200) throw new Error(`POST /api/auth/token: ${JSON.stringify(body)}`);
    return body;
  }

  beforeAll(async () => {
    provider = await startOidcProvider({
      clients: [],
      accounts,
      groupsClaim: 'always',
      ttl: { AccessToken: ACCESS_TOKEN_TTL_S },
    });
  });

  afterAll(async () => {
    await provider?.stop();
  });

  describe('one Portico (sessions in memory, 5 s tokens)', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;
    const sockets: WsConnection[] = [];

    beforeAll(async () => {
      plugins = pluginsDirWith(['bundled:echo']);
      t = await startTestApp({
        pluginsDir: plugins.dir,
        env: {
          ...oidcEnv(provider, 'portico'),
          SESSION_TOKEN_TTL_MS: String(SESSION_TOKEN_TTL_MS),
        },
      });
      await provider.setClient(clientFor('portico', t.baseUrl));
      await waitFor(
        async () =>
          (
            (await http(t.baseUrl, 'GET', '/api/plugins/echo', { token: t.adminToken() })).json as {
              status?: string;
            }
          ).status === 'running',
        15_000,
        'echo running',
      );
    });

    afterAll(async () => {
      for (const s of sockets) s.ws.terminate();
      await t?.close();
      plugins?.remove();
    });

    const me = (token: string) => http(t.baseUrl, 'GET', '/api/me', { token });

    /** Opens /plugin-ws/echo the way the console does (bearer subprotocol). */
    const echoSocket = (token: string) =>
      connect(`${t.wsUrl}/plugin-ws/echo`, {
        protocols: [
          'portico',
          BEARER_SUBPROTOCOL_PREFIX + Buffer.from(token).toString('base64url'),
        ],
      });

    const echoes = async (conn: WsConnection, text: string): Promise<string> => {
      conn.ws.send(text);
      return (await conn.next()).data.toString();
    };

    it('signs a user in and gives the console short-lived tokens that work as bearer', async () => {
      const { jar, location } = await signIn(t.baseUrl, 'alice', { returnTo: '/?tab=echo' });
      expect(location).toBe('/?tab=echo');
      expect(jar.names().sort()).toEqual([CSRF_COOKIE, SESSION_COOKIE]);
      const body = await tokenFor(t.baseUrl, jar);
      expect(body.user).toEqual({ id: 'alice', name: 'Alice Doe', roles: ['admin'], admin: true });
      const claims = claimsOf(body.token);
      expect(claims).toMatchObject({ sub: 'alice', iss: 'portico', aud: 'portico' });
      expect((claims.exp as number) - (claims.iat as number)).toBeLessThanOrEqual(
        SESSION_TOKEN_TTL_MS / 1000,
      );
      expect(Math.floor(Date.parse(body.expiresAt) / 1000)).toBe(claims.exp);
      expect((await me(body.token)).json).toMatchObject({ id: 'alice', admin: true });
      const session = await jar.fetch(`${t.baseUrl}/api/auth/session`);
      expect(await session.json()).toMatchObject({
        oidc: true,
        signedIn: true,
        user: { id: 'alice', admin: true },
      });
    });

    it('sets the session cookie HttpOnly, SameSite=Lax, Path=/, without Secure over http; the CSRF cookie is readable', async () => {
      const begun = await beginSignIn(t.baseUrl, '/');
      const login = parseCookieLine(cookieLine(begun.setCookies, LOGIN_COOKIE));
      expect(login.attributes).toEqual(
        expect.arrayContaining(['path=/api/auth', 'httponly', 'samesite=Lax', 'max-age=600']),
      );
      expect(login.attributes).not.toContain('secure');

      const { setCookies } = await signIn(t.baseUrl, 'bob');
      const session = parseCookieLine(cookieLine(setCookies, SESSION_COOKIE));
      expect(session.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(session.attributes).toEqual(
        expect.arrayContaining(['path=/', 'httponly', 'samesite=Lax']),
      );
      expect(session.attributes).not.toContain('secure');
      const csrf = parseCookieLine(cookieLine(setCookies, CSRF_COOKIE));
      expect(csrf.value.length).toBeGreaterThanOrEqual(22);
      expect(csrf.attributes).toEqual(expect.arrayContaining(['path=/', 'samesite=Lax']));
      expect(csrf.attributes).not.toContain('httponly');
      expect(csrf.attributes).not.toContain('secure');
      // The sign-in transaction ends with the callback.
      expect(parseCookieLine(cookieLine(setCookies, LOGIN_COOKIE)).attributes).toContain(
        'max-age=0',
      );
    });

    it('sends the browser to the provider with the code flow, PKCE (S256), state, nonce and its callback', async () => {
      const { authorizationUrl } = await beginSignIn(t.baseUrl, '/console');
      const url = new URL(authorizationUrl);
      expect(`${url.origin}${url.pathname}`.startsWith(`${provider.issuer}/`)).toBe(true);
      const params = url.searchParams;
      expect(params.get('response_type')).toBe('code');
      expect(params.get('client_id')).toBe('portico');
      expect(params.get('redirect_uri')).toBe(`${t.baseUrl}${CALLBACK_PATH}`);
      expect(params.get('scope')?.split(' ')).toContain('openid');
      expect(params.get('code_challenge_method')).toBe('S256');
      expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      expect(params.get('nonce')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      // Every sign-in gets its own.
      const again = new URL((await beginSignIn(t.baseUrl, '/console')).authorizationUrl);
      for (const name of ['state', 'nonce', 'code_challenge'])
        expect(again.searchParams.get(name)).not.toBe(params.get(name));
    });

    describe('a callback that does not belong to the sign-in is refused', () => {
      /** Calls the callback and checks the refusal page; returns its message. */
      async function refused(jar: CookieJar, callbackUrl: string, status = 400): Promise<string> {
        const res = await jar.fetch(callbackUrl);
        const html = await res.text();
        expect(res.status).toBe(status);
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(res.headers.get('location')).toBeNull();
        const message = signInError(html);
        expect(message).toBeDefined();
        expect(cookieLine(res.headers.getSetCookie(), SESSION_COOKIE)).toBeUndefined();
        expect(jar.get(SESSION_COOKIE)).toBeUndefined();
        return message ?? '';
      }

      async function atCallback(login = 'alice') {
        const begun = await beginSignIn(t.baseUrl, '/');
        const callbackUrl = await signInThroughProvider(provider, begun.authorizationUrl, login);
        return { ...begun, callbackUrl };
      }

      it('a tampered state', async () => {
        const { jar, callbackUrl } = await atCallback();
        const url = new URL(callbackUrl);
        url.searchParams.set('state', `${url.searchParams.get('state')}x`);
        expect(await refused(jar, url.toString())).toMatch(/state/);
      });

      it('no sign-in cookie (another browser, or expired)', async () => {
        const { jar, callbackUrl } = await atCallback();
        jar.delete(LOGIN_COOKIE);
        expect(await refused(jar, callbackUrl)).toMatch(
          /expired or was started in another browser/,
        );
      });

      it('a sign-in cookie with one character changed', async () => {
        const { jar, callbackUrl } = await atCallback();
        const value = jar.get(LOGIN_COOKIE) ?? '';
        const at = Math.floor(value.length / 2);
        const flipped = `${value.slice(0, at)}${value[at] === 'A' ? 'B' : 'A'}${value.slice(at + 1)}`;
        jar.set(LOGIN_COOKIE, flipped, '/api/auth');
        expect(await refused(jar, callbackUrl)).toMatch(
          /expired or was started in another browser/,
        );
      });

      it('a replayed authorization code (the provider refuses it: invalid_grant)', async () => {
        const { jar, callbackUrl } = await atCallback();
        const loginCookie = jar.get(LOGIN_COOKIE) ?? '';
        const first = await jar.fetch(callbackUrl);
        await first.arrayBuffer();
        expect(first.status).toBe(303);
        expect(jar.get(LOGIN_COOKIE)).toBeUndefined();
        const before = await provider.stats();
        // The same answer again, with the transaction cookie as it was (an attacker's replay).
        const replay = new CookieJar();
        replay.set(LOGIN_COOKIE, loginCookie, '/api/auth');
        expect(await refused(replay, callbackUrl)).toMatch(/invalid_grant/);
        const after = await provider.stats();
        expect(after.tokenErrors.authorization_code ?? 0).toBe(
          (before.tokenErrors.authorization_code ?? 0) + 1,
        );
      });

      it('an ID token for another nonce', async () => {
        const begun = await beginSignIn(t.baseUrl, '/');
        const url = new URL(begun.authorizationUrl);
        url.searchParams.set('nonce', randomBytes(24).toString('base64url'));
        const callbackUrl = await signInThroughProvider(provider, url.toString(), 'alice');
        expect(new URL(callbackUrl).searchParams.get('code')).toBeTruthy();
        expect(await refused(begun.jar, callbackUrl)).toMatch(/nonce/);
      });

      it('an expired ID token', async () => {
        await provider.setClockOffset(-7200);
        try {
          const { jar, callbackUrl } = await atCallback();
          expect(await refused(jar, callbackUrl)).toMatch(/exp/i);
        } finally {
          await provider.setClockOffset(0);
        }
      });

      it('the provider says access_denied (403)', async () => {
        const begun = await beginSignIn(t.baseUrl, '/');
        const callbackUrl = await signInThroughProvider(provider, begun.authorizationUrl, 'alice', {
          cancel: true,
        });
        expect(new URL(callbackUrl).searchParams.get('error')).toBe('access_denied');
        expect(await refused(begun.jar, callbackUrl, 403)).toMatch(/access_denied/);
      });
    });

    it('refuses a returnTo that leaves Portico, and keeps a path with query and fragment', async () => {
      for (const returnTo of [
        'https://evil.example/',
        '//evil.example',
        '/\\evil.example',
        '/console\r\nSet-Cookie: x=1',
      ]) {
        const jar = new CookieJar();
        const res = await jar.fetch(
          `${t.baseUrl}/api/auth/login?returnTo=${encodeURIComponent(returnTo)}`,
        );
        const html = await res.text();
        expect({ returnTo, status: res.status }).toEqual({ returnTo, status: 400 });
        expect(res.headers.get('location')).toBeNull();
        expect(signInError(html)).toMatch(/returnTo must be a path on this server/);
        expect(jar.get(LOGIN_COOKIE)).toBeUndefined();
      }
      const { location } = await signIn(t.baseUrl, 'bob', { returnTo: '/console?x=1#y' });
      expect(location).toBe('/console?x=1#y');
    });

    it('maps provider groups to roles: an admin, a user without roles, and a group change picked up at refresh', async () => {
      const alice = await signIn(t.baseUrl, 'alice');
      const bob = await signIn(t.baseUrl, 'bob');
      const aliceToken = await tokenFor(t.baseUrl, alice.jar);
      let bobToken = await tokenFor(t.baseUrl, bob.jar);
      let bobAt = Date.now();
      expect(aliceToken.user).toMatchObject({ roles: ['admin'], admin: true });
      expect(bobToken.user).toEqual({ id: 'bob', name: 'Bob', roles: [], admin: false });
      expect(claimsOf(bobToken.token).roles).toEqual([]);
      expect((await me(bobToken.token)).json).toMatchObject({ id: 'bob', admin: false });
      const enable = await http(t.baseUrl, 'PUT', '/api/plugins/echo/enable', {
        token: bobToken.token,
        body: { enabled: true },
      });
      expect(enable.status).toBe(403);

      try {
        const restricted = await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
          token: aliceToken.token,
          body: { roles: ['admin'] },
        });
        expect(restricted.status).toBe(200);
        expect(await echoSocket(bobToken.token)).toMatchObject({ kind: 'rejected', status: 403 });
        const allowed = await echoSocket(aliceToken.token);
        expect(allowed.kind).toBe('open');
        if (allowed.kind === 'open') {
          sockets.push(allowed.conn);
          expect(await echoes(allowed.conn, 'for admins')).toBe('for admins');
          allowed.conn.ws.close();
          await allowed.conn.closed;
        }

        await provider.setGroups('bob', ['portico-admins']);
        // Until the provider's token is refreshed, bob keeps the roles of his sign-in.
        await clockReaches(bobAt + REFRESH_DUE_MS);
        const before = await provider.stats();
        bobToken = await tokenFor(t.baseUrl, bob.jar);
        bobAt = Date.now();
        const after = await provider.stats();
        expect(after.tokenRequests.refresh_token ?? 0).toBe(
          (before.tokenRequests.refresh_token ?? 0) + 1,
        );
        expect(bobToken.user).toEqual({ id: 'bob', name: 'Bob', roles: ['admin'], admin: true });
        expect(claimsOf(bobToken.token).roles).toEqual(['admin']);
        const bobSocket = await echoSocket(bobToken.token);
        expect(bobSocket.kind).toBe('open');
        if (bobSocket.kind === 'open') {
          sockets.push(bobSocket.conn);
          bobSocket.conn.ws.close();
          await bobSocket.conn.closed;
        }
      } finally {
        await provider.setGroups('bob', accounts.bob.groups);
        await http(t.baseUrl, 'PUT', '/api/plugins/echo/access', {
          token: t.adminToken(),
          body: { roles: [] },
        });
      }
    });

    it('needs the CSRF header and a same-origin Origin for token and sign-out', async () => {
      const { jar } = await signIn(t.baseUrl, 'bob');
      const csrf = jar.get(CSRF_COOKIE) ?? '';
      const refusals: [Record<string, string>, RegExp][] = [
        [{}, /missing or wrong X-CSRF-Token header/],
        [{ 'x-csrf-token': `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}` }, /X-CSRF/],
        [{ 'x-csrf-token': csrf, origin: 'https://evil.example' }, /cross-site request refused/],
        [{ 'x-csrf-token': csrf, origin: 'null' }, /cross-site request refused/],
      ];
      for (const what of ['token', 'logout'] as const) {
        for (const [headers, message] of refusals) {
          const res = await postAuth(t.baseUrl, jar, what, headers);
          const body = (await res.json()) as { message?: string };
          expect({ what, headers, status: res.status }).toEqual({ what, headers, status: 403 });
          expect(body.message).toMatch(message);
          // A refusal leaves the session as it was.
          expect(jar.get(SESSION_COOKIE)).toBeDefined();
        }
      }
      const ok = await postAuth(t.baseUrl, jar, 'token', {
        'x-csrf-token': csrf,
        origin: t.baseUrl,
      });
      expect(ok.status).toBe(200);
      const out = await postAuth(t.baseUrl, jar, 'logout', {
        'x-csrf-token': csrf,
        origin: t.baseUrl,
      });
      expect(out.status).toBe(200);
      // The session was still there: the answer is the provider's sign-out page, not '/'.
      expect(((await out.json()) as { redirect: string }).redirect).toMatch(
        new RegExp(`^${provider.issuer}/`),
      );
    });

    it('gives a browser that signs in again a new session id and ends the old one (no fixation)', async () => {
      const bob = await signIn(t.baseUrl, 'bob');
      const bobCookie = bob.jar.get(SESSION_COOKIE) ?? '';
      const bobCsrf = bob.jar.get(CSRF_COOKIE) ?? '';
      const bobToken = await tokenFor(t.baseUrl, bob.jar);
      // Same Portico cookies, another person at the provider.
      const alice = await signIn(t.baseUrl, 'alice', { jar: bob.jar });
      const aliceCookie = alice.jar.get(SESSION_COOKIE);
      expect(aliceCookie).toBeDefined();
      expect(aliceCookie).not.toBe(bobCookie);
      expect((await tokenFor(t.baseUrl, alice.jar)).user.id).toBe('alice');

      const old = new CookieJar();
      old.set(SESSION_COOKIE, bobCookie);
      old.set(CSRF_COOKIE, bobCsrf);
      expect((await postAuth(t.baseUrl, old, 'token')).status).toBe(401);
      // Tokens of the ended session are refused at once on this replica.
      expect((await me(bobToken.token)).status).toBe(401);
    });

    it('refreshes the provider token once for concurrent requests, and ends the session when the provider refuses the refresh', async () => {
      const carol = await signIn(t.baseUrl, 'carol');
      await provider.resetStats();
      expect((await tokenFor(t.baseUrl, carol.jar)).user.id).toBe('carol');
      expect((await provider.stats()).tokenRequests.refresh_token).toBeUndefined();

      await clockReaches(carol.at + REFRESH_DUE_MS);
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => postAuth(t.baseUrl, carol.jar, 'token')),
      );
      const refreshedAt = Date.now();
      expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 200, 200]);
      const tokens = (await Promise.all(answers.map((res) => res.json()))) as TokenAnswer[];
      for (const body of tokens) expect(body.user).toMatchObject({ id: 'carol', admin: true });
      // One refresh: rotation retires the refresh token, so a second use would have failed.
      const stats = await provider.stats();
      expect(stats.tokenRequests.refresh_token).toBe(1);
      expect(stats.tokenErrors.refresh_token).toBeUndefined();

      expect(Object.keys(await provider.revokeAccount('carol'))).toContain('RefreshToken');
      await clockReaches(refreshedAt + REFRESH_DUE_MS);
      const cookies = { session: carol.jar.get(SESSION_COOKIE), csrf: carol.jar.get(CSRF_COOKIE) };
      const ended = await postAuth(t.baseUrl, carol.jar, 'token');
      expect(ended.status).toBe(401);
      expect(((await ended.json()) as { message: string }).message).toMatch(/Sign in again/);
      const cleared = ended.headers.getSetCookie();
      for (const name of [SESSION_COOKIE, CSRF_COOKIE])
        expect(parseCookieLine(cookieLine(cleared, name)).attributes).toContain('max-age=0');
      expect((await provider.stats()).tokenErrors.refresh_token).toBe(1);
      // The session is gone, not just this answer: its cookie no longer opens anything.
      const replay = new CookieJar();
      replay.set(SESSION_COOKIE, cookies.session ?? '');
      replay.set(CSRF_COOKIE, cookies.csrf ?? '');
      expect((await postAuth(t.baseUrl, replay, 'token')).status).toBe(401);
    });

    it('signs out at Portico and at the provider: the session, its tokens and its sockets end at once', async () => {
      const alice = await signIn(t.baseUrl, 'alice');
      const cookies = { session: alice.jar.get(SESSION_COOKIE), csrf: alice.jar.get(CSRF_COOKIE) };
      const { token } = await tokenFor(t.baseUrl, alice.jar);
      const socket = await echoSocket(token);
      expect(socket.kind).toBe('open');
      if (socket.kind === 'open') sockets.push(socket.conn);
      const before = await provider.stats();

      const res = await postAuth(t.baseUrl, alice.jar, 'logout');
      expect(res.status).toBe(200);
      const { redirect } = (await res.json()) as { redirect: string };
      const cleared = res.headers.getSetCookie();
      for (const name of [SESSION_COOKIE, CSRF_COOKIE])
        expect(parseCookieLine(cookieLine(cleared, name)).attributes).toContain('max-age=0');
      const url = new URL(redirect);
      expect(redirect.startsWith(`${provider.issuer}/`)).toBe(true);
      expect(url.searchParams.get('post_logout_redirect_uri')).toBe(`${t.baseUrl}/`);
      expect(url.searchParams.get('client_id')).toBe('portico');
      const hint = url.searchParams.get('id_token_hint') ?? '';
      expect(claimsOf(hint)).toMatchObject({ sub: 'alice', aud: 'portico', iss: provider.issuer });

      // At once on this replica: the token, the socket opened with it, the cookie.
      expect((await me(token)).status).toBe(401);
      if (socket.kind === 'open') expect((await socket.conn.closed).code).toBe(4401);
      const replay = new CookieJar();
      replay.set(SESSION_COOKIE, cookies.session ?? '');
      replay.set(CSRF_COOKIE, cookies.csrf ?? '');
      expect((await postAuth(t.baseUrl, replay, 'token')).status).toBe(401);
      const after = await provider.stats();
      expect(after.requests.revocation ?? 0).toBe((before.requests.revocation ?? 0) + 1);

      const landed = await signOutThroughProvider(provider, redirect, alice.providerCookies);
      expect(`${new URL(landed).origin}${new URL(landed).pathname}`).toBe(`${t.baseUrl}/`);
      // The provider session is over: a new sign-in asks for the login again.
      const begun = await beginSignIn(t.baseUrl, '/');
      expect(await providerPage(begun.authorizationUrl, alice.providerCookies)).toMatch(
        /name="login"/,
      );

      // Without a session (its cookie unknown, or no cookie at all): nothing to end.
      for (const stranger of [replay, new CookieJar()]) {
        const anonymous = await postAuth(t.baseUrl, stranger, 'logout', {});
        expect({ cookies: stranger.names(), status: anonymous.status }).toEqual({
          cookies: stranger.names(),
          status: 200,
        });
        expect(await anonymous.json()).toEqual({ redirect: '/' });
      }
    });

    it('closes a plugin socket with 4401 when its session token expires; a new token opens a new one', async () => {
      const { jar } = await signIn(t.baseUrl, 'bob');
      const first = await tokenFor(t.baseUrl, jar);
      const socket = await echoSocket(first.token);
      if (socket.kind !== 'open') throw new Error(`socket refused: ${socket.status}`);
      sockets.push(socket.conn);
      expect(await echoes(socket.conn, 'before')).toBe('before');
      const closed = await socket.conn.closed;
      expect(closed.code).toBe(4401);
      // Closed at exp, not before it.
      expect(Date.now()).toBeGreaterThanOrEqual(((claimsOf(first.token).exp as number) - 1) * 1000);

      const second = await tokenFor(t.baseUrl, jar);
      const again = await open(`${t.wsUrl}/plugin-ws/echo`, { token: second.token });
      sockets.push(again);
      expect(await echoes(again, 'after')).toBe('after');
      again.ws.close();
      await again.closed;
    });
  });

  describe('session lifetimes (SESSION_IDLE_TIMEOUT_MS=1500, SESSION_MAX_AGE_MS=5000)', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;
    const IDLE_MS = 1500;

    beforeAll(async () => {
      plugins = pluginsDirWith([]);
      t = await startTestApp({
        pluginsDir: plugins.dir,
        env: {
          ...oidcEnv(provider, 'portico-lifetimes'),
          SESSION_IDLE_TIMEOUT_MS: String(IDLE_MS),
          SESSION_MAX_AGE_MS: '5000',
          SESSION_TOKEN_TTL_MS: String(SESSION_TOKEN_TTL_MS),
        },
      });
      await provider.setClient(clientFor('portico-lifetimes', t.baseUrl));
    });

    afterAll(async () => {
      await t?.close();
      plugins?.remove();
    });

    /** The browser's session cookies, sent whatever the jar thinks of their Max-Age. */
    function pinned(jar: CookieJar): CookieJar {
      const copy = new CookieJar();
      copy.set(SESSION_COOKIE, jar.get(SESSION_COOKIE) ?? '');
      copy.set(CSRF_COOKIE, jar.get(CSRF_COOKIE) ?? '');
      return copy;
    }

    it('ends a session left idle longer than SESSION_IDLE_TIMEOUT_MS', async () => {
      const { jar } = await signIn(t.baseUrl, 'alice');
      await tokenFor(t.baseUrl, jar);
      const lastUse = Date.now();
      await clockReaches(lastUse + IDLE_MS + 500);
      const res = await postAuth(t.baseUrl, pinned(jar), 'token');
      expect(res.status).toBe(401);
      for (const name of [SESSION_COOKIE, CSRF_COOKIE])
        expect(parseCookieLine(cookieLine(res.headers.getSetCookie(), name)).attributes).toContain(
          'max-age=0',
        );
      const session = await pinned(jar).fetch(`${t.baseUrl}/api/auth/session`);
      expect(await session.json()).toMatchObject({ oidc: true, signedIn: false });
    });

    it('never issues a token past the session end, and ends the session at SESSION_MAX_AGE_MS however busy it is', async () => {
      const { jar } = await signIn(t.baseUrl, 'bob');
      const browser = pinned(jar);
      const described = (await (await browser.fetch(`${t.baseUrl}/api/auth/session`)).json()) as {
        expiresAt: string;
      };
      const end = Date.parse(described.expiresAt);
      const issued: TokenAnswer[] = [];
      // Used well within the idle timeout, until just before the absolute end.
      while (Date.now() < end - 600) {
        issued.push(await tokenFor(t.baseUrl, browser));
        await clockReaches(Math.min(Date.now() + 300, end - 600));
      }
      expect(issued.length).toBeGreaterThanOrEqual(3);
      for (const body of issued) {
        expect(Date.parse(body.expiresAt)).toBe(end);
        expect(claimsOf(body.token).exp).toBe(Math.floor(end / 1000));
      }
      await clockReaches(end + 50);
      expect((await postAuth(t.baseUrl, browser, 'token')).status).toBe(401);
    });
  });

  describe('with OIDC_REDIRECT_URL on https', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;
    const redirectUrl = `https://portico.example${CALLBACK_PATH}`;

    beforeAll(async () => {
      plugins = pluginsDirWith([]);
      t = await startTestApp({
        pluginsDir: plugins.dir,
        env: { ...oidcEnv(provider, 'portico-https'), OIDC_REDIRECT_URL: redirectUrl },
      });
      await provider.setClient(clientFor('portico-https', 'https://portico.example', redirectUrl));
    });

    afterAll(async () => {
      await t?.close();
      plugins?.remove();
    });

    it('marks every cookie Secure and uses the configured redirect URL', async () => {
      const begun = await beginSignIn(t.baseUrl, '/');
      expect(new URL(begun.authorizationUrl).searchParams.get('redirect_uri')).toBe(redirectUrl);
      expect(parseCookieLine(cookieLine(begun.setCookies, LOGIN_COOKIE)).attributes).toEqual(
        expect.arrayContaining(['secure', 'httponly', 'path=/api/auth']),
      );
      const { setCookies, callbackUrl } = await signIn(t.baseUrl, 'alice');
      expect(callbackUrl.startsWith(`${redirectUrl}?`)).toBe(true);
      expect(parseCookieLine(cookieLine(setCookies, SESSION_COOKIE)).attributes).toEqual(
        expect.arrayContaining(['secure', 'httponly', 'path=/', 'samesite=Lax']),
      );
      const csrf = parseCookieLine(cookieLine(setCookies, CSRF_COOKIE));
      expect(csrf.attributes).toContain('secure');
      expect(csrf.attributes).not.toContain('httponly');
    });
  });

  describe('without OIDC_ISSUER', () => {
    let t: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;

    beforeAll(async () => {
      plugins = pluginsDirWith([]);
      t = await startTestApp({ pluginsDir: plugins.dir });
    });

    afterAll(async () => {
      await t?.close();
      plugins?.remove();
    });

    it('says so at /api/auth/session and answers 404 on the sign-in routes', async () => {
      const session = await http(t.baseUrl, 'GET', '/api/auth/session');
      expect(session.status).toBe(200);
      expect(session.json).toEqual({ oidc: false, signedIn: false });
      for (const [method, path] of [
        ['GET', '/api/auth/login?returnTo=/'],
        ['GET', `${CALLBACK_PATH}?code=x&state=y`],
        ['POST', '/api/auth/token'],
        ['POST', '/api/auth/logout'],
      ]) {
        const res = await http(t.baseUrl, method, path, {
          headers: { cookie: `${SESSION_COOKIE}=x; ${CSRF_COOKIE}=y`, 'x-csrf-token': 'y' },
        });
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
        expect(res.json).toMatchObject({
          statusCode: 404,
          message: expect.stringMatching(/single sign-on is not configured/) as unknown,
        });
      }
    });
  });

  describe("the host's logs at debug", () => {
    let p: PorticoProcess;
    let plugins: ReturnType<typeof pluginsDirWith>;

    beforeAll(async () => {
      plugins = pluginsDirWith([]);
      p = await startPorticoProcess(plugins.dir, {
        env: { ...oidcEnv(provider, 'portico-logs'), LOG_LEVEL: 'debug' },
        capture: true,
      });
      await provider.setClient(clientFor('portico-logs', p.baseUrl));
    }, 60_000);

    afterAll(async () => {
      await p?.stop();
      plugins?.remove();
    });

    it('never contain the code, the cookies, the CSRF value, a token or the provider tokens', async () => {
      const signedIn = await signIn(p.baseUrl, 'alice', { returnTo: '/console' });
      const { loginCookie } = signedIn;
      const callback = new URL(signedIn.callbackUrl);
      const code = callback.searchParams.get('code') ?? '';
      // The provider's opaque tokens (codes, access and refresh tokens) share this shape.
      expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const sessionCookie = signedIn.jar.get(SESSION_COOKIE) ?? '';
      const csrf = signedIn.jar.get(CSRF_COOKIE) ?? '';
      const first = await tokenFor(p.baseUrl, signedIn.jar);
      await clockReaches(signedIn.at + REFRESH_DUE_MS);
      const before = await provider.stats();
      const second = await tokenFor(p.baseUrl, signedIn.jar);
      expect((await provider.stats()).tokenRequests.refresh_token ?? 0).toBe(
        (before.tokenRequests.refresh_token ?? 0) + 1,
      );
      expect((await http(p.baseUrl, 'GET', '/api/me', { token: second.token })).status).toBe(200);
      const out = await postAuth(p.baseUrl, signedIn.jar, 'logout');
      const { redirect } = (await out.json()) as { redirect: string };
      const idToken = new URL(redirect).searchParams.get('id_token_hint') ?? '';
      expect(idToken.split('.')).toHaveLength(3);

      await waitFor(() => p.output().includes('signed_out'), 10_000, 'the sign-out log line');
      const output = p.output();
      // The log is not silent: the flow is in it.
      for (const event of ['signed_in', 'signed_out', '/api/auth/callback'])
        expect(output).toContain(event);
      const secrets = {
        code,
        loginCookie,
        sessionCookie,
        csrf,
        firstToken: first.token,
        firstSignature: first.token.split('.')[2],
        secondToken: second.token,
        secondSignature: second.token.split('.')[2],
        idToken,
        idTokenSignature: idToken.split('.')[2],
      };
      for (const [name, value] of Object.entries(secrets)) {
        expect(value.length).toBeGreaterThan(20);
        expect({ name, logged: output.includes(value) }).toEqual({ name, logged: false });
      }
      // Nor any other 43-character base64url run: the provider's codes, access and refresh
      // tokens (which the test never sees) and Portico's cookie secrets all have that shape.
      // State, nonce and code challenge have it too, but they are public (in the browser's URL).
      const authorization = new URL(signedIn.authorizationUrl).searchParams;
      const opaque = ['state', 'nonce', 'code_challenge']
        .map((name) => authorization.get(name) ?? '')
        .reduce((text, value) => text.split(value).join('<public>'), output)
        .match(/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g);
      expect(opaque ?? []).toEqual([]);
    });
  });

  describe('when the provider cannot be reached', () => {
    let own: OidcProvider;
    let t: TestApp;
    let down: TestApp;
    let plugins: ReturnType<typeof pluginsDirWith>;

    beforeAll(async () => {
      // A provider of its own, stopped mid-test; access tokens that are always due for refresh.
      own = await startOidcProvider({
        clients: [],
        accounts,
        groupsClaim: 'always',
        ttl: { AccessToken: 5 },
      });
      plugins = pluginsDirWith([]);
      t = await startTestApp({ pluginsDir: plugins.dir, env: oidcEnv(own, 'portico-outage') });
      await own.setClient(clientFor('portico-outage', t.baseUrl));
      // Nothing listens on port 9 of loopback (discard): discovery fails at once.
      down = await startTestApp({
        pluginsDir: plugins.dir,
        env: { ...oidcEnv(own, 'portico-down'), OIDC_ISSUER: 'http://127.0.0.1:9/realms/none' },
      });
    });

    afterAll(async () => {
      await t?.close();
      await down?.close();
      await own?.stop();
      plugins?.remove();
    });

    it('answers 502 with a page at sign-in, and /api/auth/session still answers', async () => {
      const res = await fetch(`${down.baseUrl}/api/auth/login`, { redirect: 'manual' });
      expect(res.status).toBe(502);
      expect(signInError(await res.text())).toMatch(/could not be reached/);
      const session = await fetch(`${down.baseUrl}/api/auth/session`);
      expect(await session.json()).toEqual({
        oidc: true,
        loginUrl: '/api/auth/login',
        signedIn: false,
      });
    });

    it('keeps a signed-in session when a refresh cannot reach the provider, and still issues tokens', async () => {
      const begun = await beginSignIn(t.baseUrl);
      const callbackUrl = await signInThroughProvider(own, begun.authorizationUrl, 'alice');
      expect((await begun.jar.fetch(callbackUrl)).status).toBe(303);
      await own.stop();
      // The provider's access token (5 s) is within the refresh margin: this answer tries a refresh.
      const res = await postAuth(t.baseUrl, begun.jar, 'token');
      expect(res.status).toBe(200);
      const body = (await res.json()) as TokenAnswer;
      expect(body.user).toMatchObject({ id: 'alice', admin: true });
      const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/portico_session_refreshes_total\{outcome="unreachable"\} 1/);
    });
  });
});
