import type { IncomingMessage } from 'node:http';

/** Subprotocol carrying a token: `<prefix><base64url(jwt)>` (docs/plugin-contract.md §5). */
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

const BEARER_HEADER = /^[ \t]*Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Finds the caller's token in the contract's order: `Authorization: Bearer`, bearer subprotocol,
 * `portico_token` cookie, `?token=`. The first source present wins, even if its token turns out
 * invalid, so a stale cookie can never override an explicit header. Works on a raw
 * IncomingMessage because the WebSocket upgrade path has no Express parsing.
 */
export function extractCredential(req: IncomingMessage): Credential | undefined {
  const header = BEARER_HEADER.exec(req.headers.authorization ?? '')?.[1];
  if (header !== undefined) return { token: header, source: 'header' };

  const entry = splitProtocols(req.headers['sec-websocket-protocol']).find((p) =>
    p.startsWith(BEARER_SUBPROTOCOL_PREFIX),
  );
  if (entry !== undefined) {
    const token = Buffer.from(entry.slice(BEARER_SUBPROTOCOL_PREFIX.length), 'base64url')
      .toString('utf8')
      .trim();
    if (token.length > 0) return { token, source: 'subprotocol' };
  }

  const cookie = cookiePairs(req.headers.cookie).find((c) => c.name === TOKEN_COOKIE);
  const cookieToken = cookie === undefined ? '' : cookieValue(cookie.value);
  if (cookieToken.length > 0) return { token: cookieToken, source: 'cookie' };

  // A fragment is not part of the query, wherever a `?` stands in it (as stripTokenQuery reads it).
  const url = (req.url ?? '').split('#', 1)[0] ?? '';
  const queryAt = url.indexOf('?');
  if (queryAt !== -1) {
    const query = new URLSearchParams(url.slice(queryAt + 1));
    const token = query.getAll(TOKEN_QUERY_PARAM).find((t) => t.length > 0);
    if (token !== undefined) return { token, source: 'query' };
  }
  return undefined;
}

/** The entries of a `Sec-WebSocket-Protocol` header, in the client's order. */
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
 * Removes every `token` query parameter from a URL or a bare query string
 * (`/p?a=1&token=x&b=2` → `/p?a=1&b=2`, `?token=x` → ``). The path, the fragment and the other
 * parameters stay byte for byte and in order; a URL without a token comes back unchanged.
 */
export function stripTokenQuery(url: string): string {
  const hashAt = url.indexOf('#');
  const beforeHash = hashAt === -1 ? url : url.slice(0, hashAt);
  const fragment = hashAt === -1 ? '' : url.slice(hashAt);
  const queryAt = beforeHash.indexOf('?');
  if (queryAt === -1) return url;
  const pairs = beforeHash.slice(queryAt + 1).split('&');
  const kept = pairs.filter((pair) => paramName(pair) !== TOKEN_QUERY_PARAM);
  if (kept.length === pairs.length) return url;
  const query = kept.filter((pair) => pair.length > 0).join('&');
  return beforeHash.slice(0, queryAt) + (query.length > 0 ? `?${query}` : '') + fragment;
}

/**
 * A `Cookie` header without the cookie(s) called `name`; the others stay byte for byte and in
 * order. `undefined` when nothing is left, so callers can drop the header.
 */
export function stripCookie(cookieHeader: string | undefined, name: string): string | undefined {
  const kept = cookiePairs(cookieHeader).filter((c) => c.name !== name);
  return kept.length > 0 ? kept.map((c) => c.raw).join('; ') : undefined;
}

/** The (decoded) value of the first cookie called `name` in a `Cookie` header, if any. */
export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  const pair = cookiePairs(cookieHeader).find((c) => c.name === name);
  return pair === undefined ? undefined : cookieValue(pair.value);
}

interface CookiePair {
  readonly name: string;
  readonly value: string;
  /** The pair as the client sent it, without surrounding whitespace. */
  readonly raw: string;
}

function cookiePairs(header: string | undefined): CookiePair[] {
  if (header === undefined) return [];
  const pairs: CookiePair[] = [];
  for (const part of header.split(';')) {
    const raw = part.trim();
    if (raw.length === 0) continue;
    const eq = raw.indexOf('=');
    pairs.push(
      eq === -1
        ? { name: '', value: raw, raw }
        : { name: raw.slice(0, eq).trim(), value: raw.slice(eq + 1).trim(), raw },
    );
  }
  return pairs;
}

function cookieValue(value: string): string {
  const unquoted = value.replace(/^"(.*)"$/, '$1');
  try {
    return decodeURIComponent(unquoted);
  } catch {
    return unquoted;
  }
}

/** The decoded name of one `name=value` query pair, as URLSearchParams would read it. */
function paramName(pair: string): string {
  const raw = pair.split('=', 1)[0] ?? '';
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    // A malformed escape cannot spell `token`.
    return raw;
  }
}
