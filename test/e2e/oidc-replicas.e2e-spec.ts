import { createHash, randomBytes } from 'node:crypto';

import { http } from '../helpers/http-client';
import {
  CookieJar,
  OidcProvider,
  signInThroughPortico,
  startOidcProvider,
} from '../helpers/oidc-provider';
import { pluginsDirWith } from '../helpers/plugins-dir';
import {
  ACCESS_TOKEN_TTL_S,
  clockReaches,
  CSRF_COOKIE,
  postAuth,
  REFRESH_DUE_MS,
  SESSION_COOKIE,
  TokenAnswer,
} from '../helpers/sso';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import {
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  withDatabase,
} from '../helpers/postgres';

/** A browser that holds exactly these Portico cookies (the same browser, on another replica). */
function browserWith(session: string, csrf: string): CookieJar {
  const jar = new CookieJar();
  jar.set(SESSION_COOKIE, session);
  jar.set(CSRF_COOKIE, csrf);
  return jar;
}

/**
 * Single sign-on on two Portico processes sharing one PostgreSQL (DATABASE_URL) behind one
 * OpenID provider, as two pods behind a load balancer: a browser's session is the same on both,
 * refreshed once between them, ended on both by a sign-out on either; the database holds neither
 * the cookie's secret nor the provider's tokens in the clear.
 */
describeWithPostgres('single sign-on on two replicas')(
  'single sign-on on two replicas sharing one database',
  () => {
    let server: PostgresServer;
    let url: string;
    let provider: OidcProvider;
    let plugins: ReturnType<typeof pluginsDirWith>;
    let replicas: PorticoProcess[] = [];

    beforeAll(async () => {
      server = await startPostgres();
      url = await server.createDatabase();
      provider = await startOidcProvider({
        clients: [],
        accounts: { alice: { name: 'Alice Doe', groups: ['portico-admins'] } },
        groupsClaim: 'always',
        ttl: { AccessToken: ACCESS_TOKEN_TTL_S },
      });
      plugins = pluginsDirWith([]);
      // The same SECRETS_KEY on both, as every replica of one deployment has.
      const env = {
        DATABASE_URL: url,
        SECRETS_KEY: randomBytes(32).toString('base64'),
        OIDC_ISSUER: provider.issuer,
        OIDC_CLIENT_ID: 'portico',
        OIDC_ROLE_MAP: 'portico-admins=admin',
        SESSION_TOKEN_TTL_MS: '5000',
        LOG_LEVEL: 'info',
      };
      replicas = await Promise.all([
        startPorticoProcess(plugins.dir, { env, capture: true }),
        startPorticoProcess(plugins.dir, { env, capture: true }),
      ]);
      await provider.setClient({
        client_id: 'portico',
        redirect_uris: replicas.map((r) => `${r.baseUrl}/api/auth/callback`),
        post_logout_redirect_uris: replicas.map((r) => `${r.baseUrl}/`),
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
    }, 90_000);

    afterAll(async () => {
      await Promise.all(replicas.map((r) => r.stop()));
      await provider?.stop();
      plugins?.remove();
      await server?.stop();
    }, 60_000);

    /** Signs alice in through `host`; returns her Portico cookies and what the test saw. */
    async function signIn(host: PorticoProcess) {
      const started = await signInThroughPortico(
        provider,
        `${host.baseUrl}/api/auth/login?returnTo=/`,
        'alice',
      );
      const res = await started.porticoCookies.fetch(started.callbackUrl);
      const body = await res.text();
      if (res.status !== 303) throw new Error(`the callback answered ${res.status}: ${body}`);
      const session = started.porticoCookies.get(SESSION_COOKIE) ?? '';
      const csrf = started.porticoCookies.get(CSRF_COOKIE) ?? '';
      return {
        session,
        csrf,
        code: new URL(started.callbackUrl).searchParams.get('code') ?? '',
        at: Date.now(),
      };
    }

    async function tokenOn(host: PorticoProcess, jar: CookieJar): Promise<TokenAnswer> {
      const res = await postAuth(host.baseUrl, jar, 'token');
      const body = (await res.json()) as TokenAnswer;
      if (res.status !== 200) throw new Error(`POST /api/auth/token: ${JSON.stringify(body)}`);
      return body;
    }

    let signedIn: Awaited<ReturnType<typeof signIn>>;
    /** The same browser, on either replica. */
    const browser = (): CookieJar => browserWith(signedIn.session, signedIn.csrf);
    /** A token of the session issued by the first replica, shortly before the sign-out. */
    let recentToken: string;

    it('a session started on one replica gets tokens on the other, which work on both', async () => {
      const [a, b] = replicas;
      signedIn = await signIn(a);
      const onB = await tokenOn(b, browser());
      expect(onB.user).toMatchObject({ id: 'alice', roles: ['admin'], admin: true });
      const me = await http(a.baseUrl, 'GET', '/api/me', { token: onB.token });
      expect(me.json).toMatchObject({ id: 'alice', admin: true });
    });

    it("keeps the cookie's SHA-256, not the cookie, and the provider's tokens sealed", async () => {
      const { rows } = await withDatabase(url, (c) => c.query('SELECT * FROM portico_session'));
      expect(rows).toHaveLength(1);
      const row = rows[0] as { key: string; subject: string; sealed_tokens: unknown };
      expect(row.key).not.toBe(signedIn.session);
      expect(row.key).toBe(createHash('sha256').update(signedIn.session).digest('base64url'));
      expect(row.subject).toBe('alice');
      expect(Object.keys(row.sealed_tokens as object).sort()).toEqual([
        'ciphertext',
        'nonce',
        'tag',
      ]);
      const stored = JSON.stringify(rows);
      for (const value of [signedIn.session, signedIn.code]) expect(stored).not.toContain(value);
    });

    it('refreshes the provider token once when both replicas are asked at the same moment', async () => {
      const [a, b] = replicas;
      await clockReaches(signedIn.at + REFRESH_DUE_MS);
      await provider.resetStats();
      const answers = await Promise.all(
        [a, b, a, b].map((host) => postAuth(host.baseUrl, browser(), 'token')),
      );
      expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 200]);
      recentToken = ((await answers[0].json()) as TokenAnswer).token;
      const stats = await provider.stats();
      expect(stats.tokenRequests.refresh_token).toBe(1);
      expect(stats.tokenErrors.refresh_token).toBeUndefined();
    });

    it('a sign-out on one replica ends the session on the other; the ID token was stored sealed', async () => {
      const [a, b] = replicas;
      const { rows } = await withDatabase(url, (c) => c.query('SELECT * FROM portico_session'));
      const stored = JSON.stringify(rows);
      const out = await postAuth(a.baseUrl, browser(), 'logout');
      expect(out.status).toBe(200);
      const { redirect } = (await out.json()) as { redirect: string };
      const idToken = new URL(redirect).searchParams.get('id_token_hint') ?? '';
      expect(idToken.split('.')).toHaveLength(3);
      // The row held this ID token (the hint comes from it), never in the clear.
      for (const value of [idToken, idToken.split('.')[1], idToken.split('.')[2]])
        expect(stored).not.toContain(value);
      expect((await postAuth(b.baseUrl, browser(), 'token')).status).toBe(401);
      // Its tokens are refused at once where it was signed out (elsewhere they run out).
      expect((await http(a.baseUrl, 'GET', '/api/me', { token: recentToken })).status).toBe(401);
      const left = await withDatabase(url, (c) => c.query('SELECT key FROM portico_session'));
      expect(left.rows).toEqual([]);
    });
  },
);
