/**
 * Where the console keeps the user's token: `localStorage['auth-token']`, the key CloudCLI
 * plugin frontends read, and the `portico_token` cookie, so that a plugin opening
 * `/plugin-ws/<name>` without a token of its own still authenticates (docs/plugin-contract.md §5).
 */
export const TOKEN_STORAGE_KEY = 'auth-token';
export const TOKEN_COOKIE = 'portico_token';

export function readToken(): string | null {
  try {
    const token = localStorage.getItem(TOKEN_STORAGE_KEY);
    return token === null || token === '' ? null : token;
  } catch {
    return null; // storage disabled: the user signs in for this page only
  }
}

/** Keeps a token that `GET /api/me` accepted. */
export function saveToken(token: string): void {
  try {
    localStorage.setItem(TOKEN_STORAGE_KEY, token);
  } catch {
    // Storage disabled or full: the cookie below still carries the session for this visit.
  }
  const maxAge = secondsUntilExpiry(token);
  writeCookie(token, maxAge === undefined ? '' : `; Max-Age=${Math.max(0, maxAge)}`);
}

export function clearToken(): void {
  try {
    localStorage.removeItem(TOKEN_STORAGE_KEY);
  } catch {
    // Nothing stored, nothing to clear.
  }
  writeCookie('', '; Max-Age=0');
}

/**
 * Cleans up what people paste: surrounding whitespace, quotes, and a `Bearer ` prefix copied
 * along from a header.
 */
export function normalizeToken(pasted: string): string {
  return pasted
    .trim()
    .replace(/^["']|["']$/g, '')
    .replace(/^bearer\s+/i, '')
    .trim();
}

function writeCookie(value: string, lifetime: string): void {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `${TOKEN_COOKIE}=${value}; Path=/; SameSite=Strict${lifetime}${secure}`;
}

/**
 * Seconds until the JWT's `exp`, read without verifying it (only the server's check counts):
 * the cookie then lasts no longer than the token. Undefined when the token has no readable `exp`.
 */
function secondsUntilExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { exp?: unknown };
    if (typeof claims.exp !== 'number') return undefined;
    return Math.floor(claims.exp - Date.now() / 1000);
  } catch {
    return undefined;
  }
}
