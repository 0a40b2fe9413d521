import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { suiteHasEnded, track } from './leftovers';

/** A client registered with the test provider (OpenID Connect dynamic client metadata). */
export interface OidcTestClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  /**
   * Where the provider may send the browser after RP-initiated logout; a
   * `post_logout_redirect_uri` not listed here (exactly) is refused with an error page.
   */
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  response_types?: string[];
  token_endpoint_auth_method?: string;
}

/** A person who can sign in (with any password) under their login. */
export interface OidcTestAccount {
  name?: string;
  email?: string;
  groups?: string[];
  /**
   * Further claims, put in every ID token and userinfo answer (e.g. Keycloak's
   * `realm_access: { roles: [...] }`). Only names some account has at start are ever released.
   */
  claims?: Record<string, unknown>;
}

export interface OidcProviderOptions {
  /** Registered at start; more (or replacements) later with `setClient`. */
  clients: OidcTestClient[];
  accounts: Record<string, OidcTestAccount>;
  /** Lifetimes in seconds (IdToken, AccessToken, RefreshToken, Session, Grant). */
  ttl?: Partial<Record<'IdToken' | 'AccessToken' | 'RefreshToken' | 'Session' | 'Grant', number>>;
  /** A refresh returns a new refresh token and retires the old one (default true). */
  rotateRefreshToken?: boolean;
  /**
   * When a refresh token comes with the code: `true` (default, like Keycloak) whenever the client
   * is registered with the `refresh_token` grant, with or without `offline_access`; such tokens
   * end with the provider session. `'offline_access'`: only when that scope was granted (the
   * provider grants it only with `prompt=consent`). `false`: never.
   */
  refreshTokens?: boolean | 'offline_access';
  /**
   * `'scope'` (default): the `groups` claim comes only with the `groups` scope. `'always'`: in
   * every ID token and userinfo answer, like a Keycloak group mapper.
   */
  groupsClaim?: 'scope' | 'always';
  /**
   * `false`: claims asked for by scope (name, email, groups) go only to the userinfo endpoint,
   * not into the ID token (the provider's `conformIdTokenClaims`). Default true.
   */
  claimsInIdToken?: boolean;
  /** Initial clock offset of issued ID tokens; see `OidcProvider.setClockOffset`. */
  clockOffsetSeconds?: number;
}

/** What `revokeAccount` removed, by the provider's model name (Session, Grant, RefreshToken…). */
export type RevokedByModel = Partial<Record<string, number>>;

/** Requests the provider answered since it started or `resetStats()`. */
export interface OidcProviderStats {
  /** Token-endpoint requests by `grant_type` (`authorization_code`, `refresh_token`), any outcome. */
  tokenRequests: Partial<Record<string, number>>;
  /** Of those, the ones refused (status 400 or more), by `grant_type`. */
  tokenErrors: Partial<Record<string, number>>;
  /**
   * Requests by the provider's route name: `authorization`, `token`, `userinfo`, `revocation`,
   * `end_session`, `end_session_confirm`, `discovery`, `jwks`, `interaction`…
   */
  requests: Partial<Record<string, number>>;
}

export interface OidcProvider {
  /** `http://127.0.0.1:<port>`; discovery at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** What the provider printed on stderr (warnings, errors), for a failing test to show. */
  output(): string;
  /**
   * Ends everything `login` holds at the provider: grants, authorization codes, access and
   * refresh tokens, and (unless `keepSessions`) its provider sessions, so the browser must sign
   * in again. The next refresh with any of its refresh tokens fails with `invalid_grant`.
   */
  revokeAccount(login: string, options?: { keepSessions?: boolean }): Promise<RevokedByModel>;
  /** Replaces `login`'s groups; ID tokens and userinfo answers from now on (refreshes too) carry them. */
  setGroups(login: string, groups: string[]): Promise<void>;
  /** Changes any of `login`'s name, email, groups, claims from now on. */
  updateAccount(login: string, changes: OidcTestAccount): Promise<void>;
  /**
   * Moves `iat`, `exp` and `auth_time` of every ID token issued from now on (code and refresh
   * grants) by `seconds`: -7200 with the default one-hour ID token lifetime gives tokens that
   * expired an hour ago. The provider's own clock (sessions, cookies, codes, access and refresh
   * token lifetimes, `expires_in`) is not moved; use `ttl` for short-lived access tokens.
   */
  setClockOffset(seconds: number): Promise<void>;
  /**
   * Registers a client, or replaces one (also one given at start), e.g. once the relying party's
   * port is known. Metadata the provider refuses makes this reject.
   */
  setClient(client: OidcTestClient): Promise<void>;
  stats(): Promise<OidcProviderStats>;
  resetStats(): Promise<void>;
  stop(): Promise<void>;
}

const SCRIPT = join(__dirname, 'oidc', 'provider.mjs');
const START_TIMEOUT_MS = 20_000;
const CONTROL_TIMEOUT_MS = 5_000;
/** Steps (requests) one browser-like walk through the provider may take. */
const MAX_STEPS = 20;

/**
 * Starts a real OpenID Provider (npm `oidc-provider`, ES modules only, so in a process of its
 * own) on a free 127.0.0.1 port. Stopped by `stop()`, or after the suite if a test did not get
 * there.
 */
export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProvider> {
  if (suiteHasEnded()) throw new Error('the suite has ended: no new OpenID provider');
  const child = spawn(process.execPath, [SCRIPT], {
    env: { PATH: process.env.PATH ?? '', OIDC_TEST_CONFIG: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const stop = (): Promise<void> => stopChild(child);
  const untrack = track(stop);
  try {
    const issuer = await readyIssuer(child, () => stderr);
    const control = controlClient(issuer);
    return {
      issuer,
      output: () => stderr,
      revokeAccount: async (login, revokeOptions = {}) => {
        const answer = await control('POST', `accounts/${encodeURIComponent(login)}/revoke`, {
          keepSessions: revokeOptions.keepSessions === true,
        });
        return (answer as { removed: RevokedByModel }).removed;
      },
      setGroups: async (login, groups) => {
        await control('PATCH', `accounts/${encodeURIComponent(login)}`, { groups });
      },
      updateAccount: async (login, changes) => {
        await control('PATCH', `accounts/${encodeURIComponent(login)}`, changes);
      },
      setClockOffset: async (seconds) => {
        await control('PUT', 'clock', { offsetSeconds: seconds });
      },
      setClient: async (client) => {
        await control('PUT', `clients/${encodeURIComponent(client.client_id)}`, client);
      },
      stats: async () => (await control('GET', 'stats')) as OidcProviderStats,
      resetStats: async () => {
        await control('DELETE', 'stats');
      },
      stop: async () => {
        await stop();
        untrack();
      },
    };
  } catch (err) {
    await stop();
    untrack();
    throw err;
  }
}

/** Calls the provider process's `/__test/` endpoints; a refusal rejects with its message. */
function controlClient(
  issuer: string,
): (method: string, path: string, body?: object) => Promise<unknown> {
  return async (method, path, body) => {
    const res = await fetch(`${issuer}/__test/${path}`, {
      method,
      signal: AbortSignal.timeout(CONTROL_TIMEOUT_MS),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const answer = (await res.json()) as { error?: string };
    if (!res.ok) {
      throw new Error(`the test provider refused ${method} ${path}: ${answer.error ?? res.status}`);
    }
    return answer;
  };
}

function readyIssuer(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => {
      reject(new Error(`the OpenID provider did not start:\n${stderr()}`));
    }, START_TIMEOUT_MS);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        const ready = JSON.parse(line) as { ready?: boolean; issuer?: string };
        if (ready.ready === true && typeof ready.issuer === 'string') resolve(ready.issuer);
        else reject(new Error(`unexpected first line: ${line}`));
      } catch {
        reject(new Error(`unexpected first line: ${line}\n${stderr()}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the OpenID provider exited (${code}) before it was ready:\n${stderr()}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  /** ms since the epoch; Infinity for a session cookie. */
  expiresAt: number;
}

/**
 * The cookies one server set, kept as a browser keeps them (Path, Max-Age, Expires, deletion).
 * Use one jar per server: the provider's and Portico's are separate, so neither sees the other's
 * cookies (a browser would share them between two ports of 127.0.0.1).
 */
export class CookieJar {
  private readonly cookies = new Map<string, StoredCookie>();

  /** Keeps (or deletes) what the `Set-Cookie` headers of `res`, an answer for `url`, say. */
  public store(res: Response, url: string): void {
    for (const line of res.headers.getSetCookie()) this.storeLine(line, new URL(url));
  }

  /** The `Cookie` header a browser would send to `url` (may be empty). */
  public header(url: string): string {
    const path = new URL(url).pathname;
    return this.live()
      .filter((cookie) => pathMatches(path, cookie.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join('; ');
  }

  /** The value of the cookie `name` (any path), if the jar holds one. */
  public get(name: string): string | undefined {
    return this.live().find((cookie) => cookie.name === name)?.value;
  }

  /** Names of the cookies held. */
  public names(): string[] {
    return this.live().map((cookie) => cookie.name);
  }

  /** Sets or replaces a cookie, e.g. to tamper with it. */
  public set(name: string, value: string, path = '/'): void {
    this.cookies.set(`${name};${path}`, { name, value, path, expiresAt: Infinity });
  }

  /** Forgets the cookie `name` on every path. */
  public delete(name: string): void {
    for (const [key, cookie] of this.cookies) if (cookie.name === name) this.cookies.delete(key);
  }

  /**
   * `fetch` as a browser on this server: sends the jar's cookies, keeps what the answer sets,
   * and does not follow redirects (`redirect: 'manual'`) unless `init` says otherwise.
   */
  public async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.header(url);
    if (cookie !== '' && !headers.has('cookie')) headers.set('cookie', cookie);
    const res = await fetch(url, { redirect: 'manual', ...init, headers });
    this.store(res, url);
    return res;
  }

  private storeLine(line: string, url: URL): void {
    const [pair, ...attributes] = line.split(';');
    const at = pair.indexOf('=');
    if (at <= 0) return;
    const cookie: StoredCookie = {
      name: pair.slice(0, at).trim(),
      value: pair.slice(at + 1).trim(),
      path: defaultPath(url.pathname),
      expiresAt: Infinity,
    };
    let maxAge: number | undefined;
    for (const attribute of attributes) {
      const eq = attribute.indexOf('=');
      const key = (eq < 0 ? attribute : attribute.slice(0, eq)).trim().toLowerCase();
      const value = eq < 0 ? '' : attribute.slice(eq + 1).trim();
      if (key === 'path' && value.startsWith('/')) cookie.path = value;
      else if (key === 'max-age' && /^-?\d+$/.test(value)) maxAge = Number(value);
      else if (key === 'expires' && !Number.isNaN(Date.parse(value)))
        cookie.expiresAt = Date.parse(value);
    }
    // Max-Age wins over Expires (RFC 6265 §5.3).
    if (maxAge !== undefined) cookie.expiresAt = Date.now() + maxAge * 1000;
    const key = `${cookie.name};${cookie.path}`;
    if (cookie.expiresAt <= Date.now()) this.cookies.delete(key);
    else this.cookies.set(key, cookie);
  }

  private live(): StoredCookie[] {
    const now = Date.now();
    for (const [key, cookie] of this.cookies) if (cookie.expiresAt <= now) this.cookies.delete(key);
    return [...this.cookies.values()];
  }
}

/** RFC 6265 §5.1.4: the directory of the request path. */
function defaultPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

export interface ProviderSignInOptions {
  /**
   * The provider's cookies. Pass the same jar again to come back with the provider session
   * (signed in silently as whoever signed in before, whatever `login` says) or to sign out with
   * `signOutThroughProvider`. A new, empty jar when absent.
   */
  cookies?: CookieJar;
  /**
   * Press "Cancel" on the provider's first page: it sends the browser back to the redirect URI
   * with `error=access_denied`.
   */
  cancel?: boolean;
}

/**
 * Signs `login` in through the provider's own pages the way a browser would (cookies kept,
 * redirects followed by hand, the login form and then the consent form posted), starting at
 * `authorizationUrl`; returns the URL the provider finally sends the browser to (the client's
 * redirect URI with `code` and `state`, or with `error`). Stops at the first URL outside the
 * provider. The consent page shows only the first time a provider session meets a client.
 */
export async function signInThroughProvider(
  provider: Pick<OidcProvider, 'issuer'>,
  authorizationUrl: string,
  login: string,
  options: ProviderSignInOptions = {},
): Promise<string> {
  const jar = options.cookies ?? new CookieJar();
  const back = await walkProvider(provider, jar, authorizationUrl, (page) => {
    const prompt = /name="prompt" value="([^"]+)"/.exec(page.html)?.[1];
    if (prompt === undefined || page.form === undefined) return undefined;
    if (options.cancel === true) {
      const abort = /href="([^"]*\/abort)"/.exec(page.html)?.[1];
      return abort === undefined ? undefined : { url: decodeHtml(abort) };
    }
    return {
      url: page.form.action,
      body: new URLSearchParams({ prompt, login, password: 'any password' }),
    };
  });
  if (back.startsWith(`${provider.issuer}/`))
    throw new Error(`signing in stopped at a provider page with no form: ${back}`);
  return back;
}

/** What `signInThroughPortico` leaves for the test to finish the sign-in with. */
export interface PorticoSignIn {
  /** Where Portico sent the browser: the provider's authorization URL (check its parameters). */
  authorizationUrl: string;
  /** Where the provider sends the browser back: Portico's callback with `code` and `state`. */
  callbackUrl: string;
  /** Portico's cookies so far (`portico_oidc`, Path=/api/auth); send them to the callback. */
  porticoCookies: CookieJar;
  /** The provider's cookies (its session), for a silent second sign-in or for sign-out. */
  providerCookies: CookieJar;
}

/**
 * Starts a sign-in at Portico (`porticoLoginUrl`, e.g. `<portico>/api/auth/login?returnTo=/x`)
 * as a browser would: keeps the cookies Portico sets, follows its redirect to the provider,
 * signs `login` in there, and stops where the provider sends the browser back, without calling
 * Portico's callback, so a test can call it itself (or tamper with state, replay the code…).
 */
export async function signInThroughPortico(
  provider: Pick<OidcProvider, 'issuer'>,
  porticoLoginUrl: string,
  login: string,
  options: ProviderSignInOptions & { porticoCookies?: CookieJar } = {},
): Promise<PorticoSignIn> {
  const porticoCookies = options.porticoCookies ?? new CookieJar();
  const providerCookies = options.cookies ?? new CookieJar();
  const res = await porticoCookies.fetch(porticoLoginUrl);
  const location = res.headers.get('location');
  const body = await res.text();
  if (res.status < 300 || res.status > 399 || location === null) {
    throw new Error(`Portico answered ${res.status} at ${porticoLoginUrl}: ${body.slice(0, 500)}`);
  }
  const authorizationUrl = new URL(location, porticoLoginUrl).toString();
  if (!authorizationUrl.startsWith(`${provider.issuer}/`)) {
    throw new Error(`Portico sent the browser to ${authorizationUrl}, not to the provider`);
  }
  const callbackUrl = await signInThroughProvider(provider, authorizationUrl, login, {
    ...options,
    cookies: providerCookies,
  });
  return { authorizationUrl, callbackUrl, porticoCookies, providerCookies };
}

/**
 * Follows an RP-initiated logout URL (the provider's end_session endpoint, e.g. Portico's
 * `redirect` from POST /api/auth/logout) as a browser with the provider's `cookies`, and
 * answers "Yes, sign me out". Returns where the provider finally sends the browser: the
 * `post_logout_redirect_uri` (with `state` when one was given), or its own
 * `<issuer>/session/end/success` page when there is none. The provider session ends and the
 * grants it held are revoked (their refresh tokens no longer work).
 */
export async function signOutThroughProvider(
  provider: Pick<OidcProvider, 'issuer'>,
  endSessionUrl: string,
  cookies: CookieJar = new CookieJar(),
): Promise<string> {
  return walkProvider(provider, cookies, endSessionUrl, (page) => {
    if (page.form === undefined || !page.form.action.includes('/session/end/confirm')) {
      return undefined;
    }
    // The confirmation page (signed in) or the self-submitting form (no session): same fields.
    return {
      url: page.form.action,
      body: new URLSearchParams({ ...page.form.hidden, logout: 'yes' }),
    };
  });
}

interface ProviderPage {
  url: string;
  html: string;
  /** The page's first form: its action (absolute) and hidden inputs. */
  form?: { action: string; hidden: Record<string, string> };
}

/** The next request a page leads to (a link followed, a form posted), or undefined at the end. */
type NextStep = { url: string; body?: URLSearchParams } | undefined;

/**
 * Browses the provider from `url`: follows redirects, lets `onPage` act on each HTML page,
 * and returns the first URL outside the provider, or the URL of a 200 page `onPage` has nothing
 * to do on (e.g. the provider's "signed out" page). Any other answer throws with its text.
 */
async function walkProvider(
  provider: Pick<OidcProvider, 'issuer'>,
  jar: CookieJar,
  startUrl: string,
  onPage: (page: ProviderPage) => NextStep,
): Promise<string> {
  let url = startUrl;
  let body: URLSearchParams | undefined;
  for (let step = 0; step < MAX_STEPS; step++) {
    if (!url.startsWith(`${provider.issuer}/`)) return url;
    const res = await jar.fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      ...(body === undefined ? {} : { body }),
    });
    body = undefined;
    const location = res.headers.get('location');
    if (location !== null) {
      url = new URL(location, url).toString();
      await res.arrayBuffer();
      continue;
    }
    const html = await res.text();
    const page: ProviderPage = { url, html, form: firstForm(html, url) };
    const next = res.status === 200 ? onPage(page) : undefined;
    if (next === undefined) {
      if (res.status === 200 && page.form === undefined) return url;
      throw new Error(`the provider answered ${res.status} at ${url}: ${html.slice(0, 500)}`);
    }
    url = new URL(next.url, url).toString();
    body = next.body;
  }
  throw new Error(`more than ${MAX_STEPS} steps through the provider`);
}

function firstForm(html: string, pageUrl: string): ProviderPage['form'] {
  const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
  if (form === null) return undefined;
  const hidden: Record<string, string> = {};
  for (const input of form[2].matchAll(/<input\b[^>]*>/g)) {
    const tag = input[0];
    if (!/type="hidden"/.test(tag)) continue;
    const name = /name="([^"]*)"/.exec(tag)?.[1];
    const value = /value="([^"]*)"/.exec(tag)?.[1];
    if (name !== undefined) hidden[decodeHtml(name)] = decodeHtml(value ?? '');
  }
  return { action: new URL(decodeHtml(form[1]), pageUrl).toString(), hidden };
}

/** Undoes the provider's HTML escaping of attribute values. */
function decodeHtml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27|#x2F);/g, (entity) => {
    switch (entity) {
      case '&amp;':
        return '&';
      case '&lt;':
        return '<';
      case '&gt;':
        return '>';
      case '&quot;':
        return '"';
      case '&#x2F;':
        return '/';
      default:
        return "'";
    }
  });
}
