import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

import { HttpException, Logger } from '@nestjs/common';
import type { OnApplicationBootstrap } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import type { PorticoMetrics } from '../../metrics/portico-metrics';
import { SecretCipher, SecretDecryptError } from '../../plugins/secrets/secret-cipher';
import { readCookie } from '../credential-extractor';
import { originVerdict } from '../origin-policy';
import { ADMIN_ROLE } from '../principal';
import { TokenVerifier } from '../token-verifier.service';
import { OidcProviderClient, ProviderError } from './oidc-provider-client';
import type { TokenSet } from './oidc-provider-client';
import {
  claimAt,
  groupsIn,
  OIDC_CALLBACK_PATH,
  parseRoleMap,
  parseScopes,
  rolesFor,
  safeReturnTo,
} from './oidc-settings';
import type { RoleMap } from './oidc-settings';
import { newSessionSecret, sessionExpired, sessionKey } from './session-store';
import type { SessionStore, SignInSession } from './session-store';

/** Injection tokens: the provider client and the session store (null without OIDC_ISSUER). */
export const OIDC_PROVIDER_CLIENT = Symbol('OIDC_PROVIDER_CLIENT');
export const SESSION_STORE = Symbol('SESSION_STORE');

/** The browser's session cookie (HttpOnly): a 256-bit secret, stored only as its hash. */
export const SESSION_COOKIE = 'portico_session';
/** Readable by the console's script, sent back as X-CSRF-Token (double submit, bound to the session). */
export const CSRF_COOKIE = 'portico_csrf';
/** The sign-in in progress (state, nonce, PKCE verifier, returnTo), sealed, for ten minutes. */
export const LOGIN_COOKIE = 'portico_oidc';
export const CSRF_HEADER = 'x-csrf-token';

/** How long a sign-in at the provider may take. */
const LOGIN_TTL_MS = 10 * 60_000;
/** Refresh this long before the provider's access token runs out. */
const REFRESH_MARGIN_MS = 30_000;
/** When the provider does not say how long its tokens last, check the refresh token this often. */
const DEFAULT_PROVIDER_TTL_MS = 5 * 60_000;
/** After the provider could not be reached for a refresh, try again after this long. */
const REFRESH_RETRY_MS = 60_000;

/**
 * A refusal with the HTTP status it is answered with; the message is for people. As an
 * HttpException, the global filter answers it as `{ statusCode, error, message }`.
 */
export class SignInError extends HttpException {
  public constructor(
    status: number,
    message: string,
    /** For the log line (never a token). */
    public readonly reason: string = message,
  ) {
    super(message, status);
    this.name = 'SignInError';
  }
}

/** What the browser gets: a redirect or a body, and the cookies to set. */
export interface SignInAnswer<T> {
  readonly value: T;
  readonly cookies: string[];
}

/** The signed-in user as the console shows them. */
export interface SessionUser {
  readonly id: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly admin: boolean;
}

interface LoginTransaction {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly returnTo: string;
  readonly redirectUri: string;
  readonly startedAt: number;
}

/**
 * Single sign-on (docs/operations.md, "Single sign-on"): the authorization code flow with PKCE,
 * state and nonce against OIDC_ISSUER, a server-side session per signed-in browser (idle and
 * absolute lifetimes, provider refresh tokens kept and rotated here), and the short-lived Portico
 * tokens the console gets for it.
 */
export class SignInService implements OnApplicationBootstrap {
  private readonly logger = new Logger('SingleSignOn');
  private readonly cipher: SecretCipher;
  private readonly scope: string;
  private readonly roleMap: RoleMap | undefined;

  public constructor(
    private readonly config: PorticoConfig,
    private readonly verifier: TokenVerifier,
    private readonly provider: OidcProviderClient,
    private readonly store: SessionStore,
    private readonly metrics: PorticoMetrics,
  ) {
    const key = SecretCipher.parseKey(config.SECRETS_KEY);
    if (key === undefined) throw new Error('single sign-on needs SECRETS_KEY');
    this.cipher = new SecretCipher(key);
    this.scope = parseScopes(config.OIDC_SCOPES).join(' ');
    this.roleMap = parseRoleMap(config.OIDC_ROLE_MAP);
  }

  public onApplicationBootstrap(): void {
    void this.provider.warmUp();
  }

  /** `GET /api/auth/login`: where to send the browser, with the sealed transaction cookie. */
  public async beginLogin(
    req: IncomingMessage,
    returnToParam: string | undefined,
  ): Promise<SignInAnswer<string>> {
    const returnTo = returnToParam === undefined ? '/' : safeReturnTo(returnToParam);
    if (returnTo === undefined)
      throw new SignInError(
        400,
        'returnTo must be a path on this server, such as /console',
        'returnTo refused',
      );
    const redirectUri = this.redirectUri(req);
    const transaction: LoginTransaction = {
      state: random(),
      nonce: random(),
      codeVerifier: random(),
      returnTo,
      redirectUri,
      startedAt: Date.now(),
    };
    const location = await this.provider
      .authorizationUrl({
        redirectUri,
        scope: this.scope,
        state: transaction.state,
        nonce: transaction.nonce,
        codeChallenge: createHash('sha256').update(transaction.codeVerifier).digest('base64url'),
      })
      .catch((err: unknown) => {
        throw this.providerFailure(err);
      });
    const secure = redirectUri.startsWith('https:');
    return {
      value: location,
      cookies: [
        cookie(LOGIN_COOKIE, this.sealTransaction(transaction), {
          path: '/api/auth',
          httpOnly: true,
          sameSite: 'Lax',
          secure,
          maxAgeMs: LOGIN_TTL_MS,
        }),
      ],
    };
  }

  /**
   * `GET /api/auth/callback`: checks the answer against the transaction (state; the provider
   * checks PKCE; openid-client the ID token), then starts a new session. Any session the browser
   * had is ended first: the id is always new (no session fixation).
   */
  public async finishLogin(req: IncomingMessage): Promise<SignInAnswer<string>> {
    const url = new URL(req.url ?? '/', 'http://portico.invalid');
    const params = Object.fromEntries(url.searchParams);
    const sealed = readCookie(req.headers.cookie, LOGIN_COOKIE);
    const transaction = sealed === undefined ? undefined : this.openTransaction(sealed);
    if (transaction === undefined)
      throw new SignInError(
        400,
        'This sign-in expired or was started in another browser. Sign in again.',
        sealed === undefined
          ? 'no sign-in in progress'
          : 'sign-in transaction unreadable or expired',
      );
    if (typeof params.error === 'string') {
      const description =
        typeof params.error_description === 'string' ? ` (${params.error_description})` : '';
      throw new SignInError(
        params.error === 'access_denied' ? 403 : 400,
        `The identity provider did not sign you in: ${params.error}${description}.`,
        `provider error ${params.error}`,
      );
    }
    if (params.state !== transaction.state)
      throw new SignInError(
        400,
        'The sign-in answer does not match this sign-in (state). Sign in again.',
        'state mismatch',
      );
    let tokens: TokenSet;
    try {
      tokens = await this.provider.callback(transaction.redirectUri, params, transaction);
    } catch (err) {
      throw this.providerFailure(err);
    }
    const claims = tokens.claims();
    const roles = (await this.rolesFrom(tokens)) ?? [];
    await this.endBrowserSession(req);
    const now = Date.now();
    const { secret, key } = newSessionSecret();
    const session: SignInSession = {
      sid: randomBytes(16).toString('base64url'),
      subject: claims.sub,
      name: displayName(claims),
      roles,
      csrf: randomBytes(24).toString('base64url'),
      ...(tokens.id_token !== undefined ? { idToken: tokens.id_token } : {}),
      ...(tokens.refresh_token !== undefined ? { refreshToken: tokens.refresh_token } : {}),
      providerExpiresAt: providerExpiry(tokens, now),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.config.SESSION_MAX_AGE_MS,
    };
    await this.store.sweep(now, this.config.SESSION_IDLE_TIMEOUT_MS);
    await this.store.create(key, session);
    this.metrics.signIns.inc({ outcome: 'ok' });
    this.logger.log({
      event: 'signed_in',
      user: session.subject,
      sid: session.sid,
      roles: session.roles,
      refreshToken: session.refreshToken !== undefined,
    });
    return {
      value: transaction.returnTo,
      cookies: [
        clearCookie(LOGIN_COOKIE, '/api/auth'),
        ...this.sessionCookies(req, secret, session),
      ],
    };
  }

  /**
   * `POST /api/auth/token`: a fresh Portico token for the session's user. The provider's refresh
   * token is used first when its access token has run out: a refused refresh (revoked, user
   * disabled) ends the session; an unreachable provider does not (it is tried again later).
   */
  public async issueToken(
    req: IncomingMessage,
  ): Promise<SignInAnswer<{ token: string; expiresAt: string; user: SessionUser }>> {
    const key = this.browserSessionKey(req);
    if (key === undefined) throw this.sessionEnded();
    const now = Date.now();
    let session = await this.store.get(key);
    const expired =
      session !== undefined && sessionExpired(session, now, this.config.SESSION_IDLE_TIMEOUT_MS);
    if (session !== undefined && !expired) this.checkCsrf(req, session);
    if (session === undefined || expired) {
      if (session !== undefined) {
        await this.store.delete(key);
        this.logger.log({
          event: 'session_ended',
          user: session.subject,
          sid: session.sid,
          reason: 'expired',
        });
      }
      throw this.sessionEnded();
    }
    if (this.refreshDue(session, now)) {
      const updated = await this.store.update(key, (current) => this.refreshed(current));
      if (updated === undefined || updated === null) throw this.sessionEnded();
      session = updated;
    } else {
      await this.store.touch(key, now);
    }
    const expiresAt = Math.min(now + this.config.SESSION_TOKEN_TTL_MS, session.expiresAt);
    const token = await this.verifier.issueSessionToken(
      { id: session.subject, name: session.name, roles: session.roles, sid: session.sid },
      expiresAt,
    );
    return {
      value: { token, expiresAt: new Date(expiresAt).toISOString(), user: userOf(session) },
      cookies: [],
    };
  }

  /**
   * `POST /api/auth/logout`: ends the session here (its tokens are refused at once on this
   * replica), revokes the refresh token at the provider, and returns where to send the browser:
   * the provider's end-session page when it has one, which comes back to Portico.
   */
  public async logout(req: IncomingMessage): Promise<SignInAnswer<{ redirect: string }>> {
    const key = this.browserSessionKey(req);
    if (key === undefined) return { value: { redirect: '/' }, cookies: this.clearedCookies() };
    const found = await this.store.get(key);
    if (found !== undefined) this.checkCsrf(req, found);
    const session = found === undefined ? undefined : await this.store.delete(key);
    const cookies = this.clearedCookies();
    if (session === undefined) return { value: { redirect: '/' }, cookies };
    this.verifier.endSession(session.sid, Date.now() + this.config.SESSION_TOKEN_TTL_MS);
    this.logger.log({ event: 'signed_out', user: session.subject, sid: session.sid });
    if (session.refreshToken !== undefined)
      await this.provider.revoke(session.refreshToken).catch((err: unknown) =>
        this.logger.warn({
          event: 'refresh_token_revoke_failed',
          sid: session.sid,
          reason: (err as Error).message,
        }),
      );
    const endSession = await this.provider
      .endSessionUrl({
        ...(session.idToken !== undefined ? { idTokenHint: session.idToken } : {}),
        postLogoutRedirectUri: this.postLogoutRedirectUri(req),
      })
      .catch(() => undefined);
    return { value: { redirect: endSession ?? '/' }, cookies };
  }

  /** `GET /api/auth/session`: whether this browser is signed in (nothing is changed). */
  public async describe(
    req: IncomingMessage,
  ): Promise<{ signedIn: boolean; user?: SessionUser; expiresAt?: string }> {
    const key = this.browserSessionKey(req);
    if (key === undefined) return { signedIn: false };
    const session = await this.store.get(key);
    if (
      session === undefined ||
      sessionExpired(session, Date.now(), this.config.SESSION_IDLE_TIMEOUT_MS)
    )
      return { signedIn: false };
    return {
      signedIn: true,
      user: userOf(session),
      expiresAt: new Date(session.expiresAt).toISOString(),
    };
  }

  /** Counts a refused sign-in (the controller logs it). */
  public countRefusal(status: number): void {
    this.metrics.signIns.inc({ outcome: String(status) });
  }

  /** The cookie that ends a sign-in in progress (after the callback, whatever its outcome). */
  public clearLoginCookie(): string[] {
    return [clearCookie(LOGIN_COOKIE, '/api/auth')];
  }

  /** Cookies that end the browser's session (sent with every 401 of the token endpoint). */
  public clearedCookies(): string[] {
    return [clearCookie(SESSION_COOKIE, '/'), clearCookie(CSRF_COOKIE, '/')];
  }

  private refreshDue(session: SignInSession, now: number): boolean {
    return (
      session.refreshToken !== undefined &&
      (session.providerExpiresAt === undefined ||
        session.providerExpiresAt - REFRESH_MARGIN_MS <= now)
    );
  }

  /** The session after a refresh, null when the provider refused it (the session ends). */
  private async refreshed(session: SignInSession): Promise<SignInSession | null> {
    const now = Date.now();
    // Another request (tab, replica) may have refreshed while this one waited for the lock.
    if (!this.refreshDue(session, now) || session.refreshToken === undefined)
      return { ...session, lastSeenAt: now };
    let tokens: TokenSet;
    try {
      tokens = await this.provider.refresh(session.refreshToken);
    } catch (err) {
      const failure = err instanceof ProviderError ? err.failure : undefined;
      if (failure?.kind === 'refused' || failure?.kind === 'invalid') {
        this.metrics.sessionRefreshes.inc({ outcome: 'refused' });
        this.logger.log({
          event: 'session_ended',
          user: session.subject,
          sid: session.sid,
          reason:
            failure.kind === 'refused'
              ? `refresh refused: ${failure.error}`
              : 'refresh answer failed a check',
        });
        return null;
      }
      this.metrics.sessionRefreshes.inc({ outcome: 'unreachable' });
      this.logger.warn({
        event: 'session_refresh_failed',
        user: session.subject,
        sid: session.sid,
        reason: (err as Error).message,
      });
      return { ...session, lastSeenAt: now, providerExpiresAt: now + REFRESH_RETRY_MS };
    }
    this.metrics.sessionRefreshes.inc({ outcome: 'ok' });
    const roles = await this.rolesFrom(tokens).catch(() => undefined);
    return {
      ...session,
      roles: roles ?? session.roles,
      ...(tokens.id_token !== undefined ? { idToken: tokens.id_token } : {}),
      refreshToken: tokens.refresh_token ?? session.refreshToken,
      providerExpiresAt: providerExpiry(tokens, now),
      lastSeenAt: now,
    };
  }

  /**
   * The user's roles: OIDC_ROLES_CLAIM from the ID token, else from userinfo, through
   * OIDC_ROLE_MAP. Undefined when neither has the claim (a refresh then keeps the roles).
   */
  private async rolesFrom(tokens: TokenSet): Promise<string[] | undefined> {
    const claim = this.config.OIDC_ROLES_CLAIM;
    let value = tokens.id_token !== undefined ? claimAt(tokens.claims(), claim) : undefined;
    if (value === undefined && tokens.access_token !== undefined)
      value = claimAt(await this.provider.userinfo(tokens.access_token), claim);
    if (value === undefined) return undefined;
    return rolesFor(groupsIn(value), this.roleMap);
  }

  /** The store key of the browser's session cookie; undefined when it sent none. */
  private browserSessionKey(req: IncomingMessage): string | undefined {
    const secret = readCookie(req.headers.cookie, SESSION_COOKIE);
    return secret === undefined || secret === '' ? undefined : sessionKey(secret);
  }

  /**
   * CSRF: the X-CSRF-Token header must equal the session's token (a page on another site can
   * neither read the cookie nor send the header without a CORS preflight Portico never allows),
   * and an Origin, when the browser sends one, must be this host or an allowed origin.
   */
  private checkCsrf(req: IncomingMessage, session: SignInSession): void {
    const header = req.headers[CSRF_HEADER];
    const sent = Buffer.from(typeof header === 'string' ? header : '');
    const expected = Buffer.from(session.csrf);
    const matches = sent.length === expected.length && timingSafeEqual(sent, expected);
    const origin = req.headers.origin;
    const originOk =
      origin === undefined || originVerdict(req.headers, this.config.ALLOWED_ORIGINS).allowed;
    if (matches && originOk) return;
    this.logger.warn({
      event: 'csrf_refused',
      sid: session.sid,
      reason: !matches ? 'missing or wrong X-CSRF-Token' : 'cross-site origin',
    });
    throw new SignInError(
      403,
      !matches ? 'missing or wrong X-CSRF-Token header' : 'cross-site request refused',
    );
  }

  private sessionEnded(): SignInError {
    return new SignInError(
      401,
      'You are not signed in, or your session has ended. Sign in again.',
      'no session',
    );
  }

  private async endBrowserSession(req: IncomingMessage): Promise<void> {
    const key = this.browserSessionKey(req);
    if (key === undefined) return;
    const old = await this.store.delete(key);
    if (old !== undefined)
      this.verifier.endSession(old.sid, Date.now() + this.config.SESSION_TOKEN_TTL_MS);
  }

  private sessionCookies(req: IncomingMessage, secret: string, session: SignInSession): string[] {
    const secure = this.redirectUri(req).startsWith('https:');
    const maxAgeMs = session.expiresAt - Date.now();
    return [
      cookie(SESSION_COOKIE, secret, {
        path: '/',
        httpOnly: true,
        sameSite: 'Lax',
        secure,
        maxAgeMs,
      }),
      cookie(CSRF_COOKIE, session.csrf, {
        path: '/',
        httpOnly: false,
        sameSite: 'Lax',
        secure,
        maxAgeMs,
      }),
    ];
  }

  /** OIDC_REDIRECT_URL, else this server's callback as the browser reached it. */
  private redirectUri(req: IncomingMessage): string {
    if (this.config.OIDC_REDIRECT_URL !== undefined) return this.config.OIDC_REDIRECT_URL;
    return `${requestOrigin(req)}${OIDC_CALLBACK_PATH}`;
  }

  private postLogoutRedirectUri(req: IncomingMessage): string {
    if (this.config.OIDC_POST_LOGOUT_REDIRECT_URL !== undefined)
      return this.config.OIDC_POST_LOGOUT_REDIRECT_URL;
    return `${new URL(this.redirectUri(req)).origin}/`;
  }

  private providerFailure(err: unknown): SignInError {
    if (!(err instanceof ProviderError)) throw err;
    const { failure } = err;
    switch (failure.kind) {
      case 'refused':
        return new SignInError(
          400,
          `The identity provider refused the sign-in (${failure.error}). Sign in again.`,
          `provider refused: ${failure.error}${failure.description !== undefined ? ` (${failure.description})` : ''}`,
        );
      case 'invalid':
        return new SignInError(
          400,
          `The identity provider's answer was refused: ${failure.reason}. Sign in again.`,
          failure.reason,
        );
      case 'unreachable':
        return new SignInError(
          502,
          'The identity provider could not be reached. Try again in a moment.',
          failure.reason,
        );
    }
  }

  private sealTransaction(transaction: LoginTransaction): string {
    const sealed = this.cipher.seal(JSON.stringify(transaction), LOGIN_BINDING);
    return [sealed.nonce, sealed.ciphertext, sealed.tag].map(toBase64Url).join('.');
  }

  private openTransaction(value: string): LoginTransaction | undefined {
    const [nonce, ciphertext, tag, extra] = value.split('.');
    if (nonce === undefined || ciphertext === undefined || tag === undefined || extra !== undefined)
      return undefined;
    try {
      const transaction = JSON.parse(
        this.cipher.open({ nonce, ciphertext, tag }, LOGIN_BINDING),
      ) as LoginTransaction;
      if (Date.now() - transaction.startedAt > LOGIN_TTL_MS) return undefined;
      return transaction;
    } catch (err) {
      if (err instanceof SecretDecryptError || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }
}

/**
 * A fresh state, nonce or PKCE code verifier: 256 random bits, base64url (43 characters, within
 * RFC 7636's 43–128 for a verifier), as openid-client's own generators make them.
 */
function random(): string {
  return randomBytes(32).toString('base64url');
}

/** Associated data of the transaction cookie: it opens as nothing else. */
const LOGIN_BINDING = Buffer.from('portico-oidc-login', 'utf8');

function toBase64Url(base64: string): string {
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function userOf(session: SignInSession): SessionUser {
  return {
    id: session.subject,
    name: session.name,
    roles: session.roles,
    admin: session.roles.includes(ADMIN_ROLE),
  };
}

function displayName(claims: Record<string, unknown>): string {
  const name = [claims.name, claims.preferred_username, claims.email, claims.sub].find(
    (v): v is string => typeof v === 'string' && v.length > 0,
  );
  return name ?? 'unknown';
}

/** When the provider's access token runs out (ms), or a default check interval. */
function providerExpiry(tokens: TokenSet, now: number): number {
  return typeof tokens.expires_at === 'number'
    ? tokens.expires_at * 1000
    : now + DEFAULT_PROVIDER_TTL_MS;
}

/** `scheme://host` the browser used: https when the connection or a proxy in front says so. */
function requestOrigin(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-proto'];
  const proto =
    (req.socket as TLSSocket).encrypted === true ||
    (typeof forwarded === 'string' && forwarded.split(',')[0]?.trim() === 'https')
      ? 'https'
      : 'http';
  const host = req.headers.host ?? '';
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host))
    throw new SignInError(400, 'the Host header is missing or malformed', 'bad Host header');
  return `${proto}://${host}`;
}

interface CookieOptions {
  readonly path: string;
  readonly httpOnly: boolean;
  readonly sameSite: 'Lax' | 'Strict';
  readonly secure: boolean;
  readonly maxAgeMs: number;
}

function cookie(name: string, value: string, options: CookieOptions): string {
  return [
    `${name}=${value}`,
    `Path=${options.path}`,
    `Max-Age=${Math.max(0, Math.floor(options.maxAgeMs / 1000))}`,
    `SameSite=${options.sameSite}`,
    ...(options.httpOnly ? ['HttpOnly'] : []),
    ...(options.secure ? ['Secure'] : []),
  ].join('; ');
}

function clearCookie(name: string, path: string): string {
  return `${name}=; Path=${path}; Max-Age=0; SameSite=Lax`;
}
