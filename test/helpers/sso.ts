import type { CookieJar } from './oidc-provider';

/**
 * Lifetime of the test provider's access tokens (s) in the single sign-on suites. Portico
 * refreshes a session once its provider access token runs out within REFRESH_MARGIN_S (docs:
 * "Single sign-on", POST /api/auth/token), so with 33 s a session is due for a refresh 2 to 3 s
 * after its sign-in or its last refresh (openid-client counts expiry in whole seconds): short
 * enough to wait for, long enough that a refresh is not due again while concurrent requests are
 * answered.
 */
export const ACCESS_TOKEN_TTL_S = 33;
export const REFRESH_MARGIN_S = 30;
/** From the answer that brought a provider token, how long until it is certainly due. */
export const REFRESH_DUE_MS = (ACCESS_TOKEN_TTL_S - REFRESH_MARGIN_S) * 1000 + 300;

export const SESSION_COOKIE = 'portico_session';
export const CSRF_COOKIE = 'portico_csrf';
export const LOGIN_COOKIE = 'portico_oidc';

/** What `POST /api/auth/token` answers. */
export interface TokenAnswer {
  token: string;
  expiresAt: string;
  user: { id: string; name: string; roles: string[]; admin: boolean };
}

/**
 * Waits until the wall clock reaches `at` (ms since the epoch). Session lifetimes and provider
 * token expiry are wall-clock rules: no event marks them, so the test waits for the time itself.
 */
export function clockReaches(at: number): Promise<void> {
  const ms = at - Date.now();
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/** `POST /api/auth/<what>` as the browser with `jar`, with its CSRF header unless told otherwise. */
export function postAuth(
  base: string,
  jar: CookieJar,
  what: 'token' | 'logout',
  headers: Record<string, string> = { 'x-csrf-token': jar.get(CSRF_COOKIE) ?? '' },
): Promise<Response> {
  return jar.fetch(`${base}/api/auth/${what}`, { method: 'POST', headers });
}
