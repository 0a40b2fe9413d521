import type { IncomingMessage } from 'node:http';

/** WebSocket subprotocol prefix carrying a token: `<prefix><base64url(jwt)>` (CONTRACT.md §5). */
export const BEARER_SUBPROTOCOL_PREFIX = 'base64url.bearer.authorization.portico.';
/** Offered next to the bearer entry; answered when the plugin picks no subprotocol. */
export const PORTICO_SUBPROTOCOL = 'portico';
export const TOKEN_COOKIE = 'portico_token';
export const TOKEN_QUERY_PARAM = 'token';

export type CredentialSource = 'header' | 'subprotocol' | 'cookie' | 'query';

export interface Credential {
  readonly token: string;
  readonly source: CredentialSource;
}

/**
 * Finds the caller's token, in the contract's order: Authorization header, bearer subprotocol,
 * `portico_token` cookie, `?token=`. Works on a raw IncomingMessage (the upgrade path has no
 * Express parsing).
 */
export function extractCredential(req: IncomingMessage): Credential | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(authorization);
    if (match?.[1] !== undefined) return { token: match[1], source: 'header' };
  }
  for (const protocol of splitProtocols(req.headers['sec-websocket-protocol'])) {
    if (!protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX)) continue;
    const token = Buffer.from(protocol.slice(BEARER_SUBPROTOCOL_PREFIX.length), 'base64url')
      .toString('utf8')
      .trim();
    if (token.length > 0) return { token, source: 'subprotocol' };
  }
  const cookie = readCookie(req.headers.cookie, TOKEN_COOKIE);
  if (cookie !== undefined && cookie.length > 0) return { token: cookie, source: 'cookie' };
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q !== -1) {
    const token = new URLSearchParams(url.slice(q + 1)).get(TOKEN_QUERY_PARAM);
    if (token !== null && token.length > 0) return { token, source: 'query' };
  }
  return undefined;
}

export function splitProtocols(header: string | string[] | undefined): string[] {
  const joined = Array.isArray(header) ? header.join(',') : (header ?? '');
  return joined
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/** The subprotocols a client offered, minus the one carrying its token. */
export function stripBearerSubprotocol(header: string | string[] | undefined): string[] {
  return splitProtocols(header).filter((p) => !p.startsWith(BEARER_SUBPROTOCOL_PREFIX));
}

/**
 * Removes every `token` parameter from a query string (`?a=1&token=x` → `?a=1`), keeping the
 * other parameters byte for byte and in order.
 */
export function stripTokenQuery(search: string): string {
  if (search.length <= 1) return '';
  const kept = search
    .slice(1)
    .split('&')
    .filter((pair) => {
      const name = pair.split('=', 1)[0] ?? '';
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // A malformed escape is not the token parameter.
      }
      return decoded !== TOKEN_QUERY_PARAM;
    });
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    const raw = part
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}
