/** Where and how the terminal connects: the plugin's WebSocket through Portico. */
export const PLUGIN_NAME = 'web-terminal';

/** The key the console (and CloudCLI plugins) keep the JWT under. */
const TOKEN_KEY = 'auth-token';

/** Portico's marker subprotocol; offered so that a browser accepts the answer (contract §5). */
const PORTICO_SUBPROTOCOL = 'portico';
const BEARER_SUBPROTOCOL_PREFIX = 'base64url.bearer.authorization.portico.';

/**
 * The terminal's WebSocket address. With `sessionId`, the server re-attaches to that session
 * when it still runs (and belongs to this user), else starts a new one and says so.
 */
export function terminalUrl(
  location: Location,
  size: { cols: number; rows: number },
  projectPath: string | undefined,
  sessionId?: string,
): string {
  const url = new URL(`/plugin-ws/${PLUGIN_NAME}`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (sessionId) url.searchParams.set('session', sessionId);
  if (projectPath) url.searchParams.set('cwd', projectPath);
  url.searchParams.set('cols', String(size.cols));
  url.searchParams.set('rows', String(size.rows));
  return url.toString();
}

/** The current token, read anew for every connection: the console refreshes it. */
export function readToken(): string | null {
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage blocked: the portico_token cookie may still authenticate
  }
}

/**
 * The token travels as a subprotocol (a browser cannot set headers on a WebSocket, and a query
 * string ends up in logs). Without a token, none is offered and the cookie authenticates.
 */
export function subprotocols(token: string | null): string[] {
  if (!token) return [];
  return [PORTICO_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + base64url(token)];
}

function base64url(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
