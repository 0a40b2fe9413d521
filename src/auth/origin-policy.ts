import type { IncomingHttpHeaders } from 'node:http';

import type { CredentialSource } from './credential-extractor';

/** The message of the 403 a refused cross-site request gets (HTTP body, WebSocket refusal). */
export const CROSS_SITE_REFUSED = 'cross-site request refused';

/** Why a request carrying an ambient credential was let in or refused (for logs, never sent). */
export type OriginVerdict =
  | { readonly allowed: true; readonly by: 'same-host' | 'allowed-origin' | 'fetch-metadata' }
  | {
      readonly allowed: false;
      readonly reason: 'foreign-origin' | 'opaque-origin' | 'malformed-origin' | 'no-origin';
    };

/** `Sec-Fetch-Site` values a browser sends for a request its own page or its user started. */
const FIRST_PARTY_FETCH_SITES: ReadonlySet<string> = new Set(['same-origin', 'none']);

/** A Host header: a host name or bracketed IPv6 literal, optional port, nothing else. */
const HOST_HEADER = /^(?:\[[0-9a-fA-F:.]+\]|[^\s/?#@\\[\]:]+)(?::\d{1,5})?$/;

/**
 * True for the credentials a browser attaches on its own to requests any page makes (the
 * `portico_token` cookie, a `?token=` in a URL a page can link to): only these need the
 * cross-site rule. A header or subprotocol token was put there by code holding it.
 */
export function isAmbientCredential(source: CredentialSource): boolean {
  return source === 'cookie' || source === 'query';
}

/**
 * `scheme://host[:port]` as browsers serialise an origin (lower-case host, no default port), for
 * an `http:`/`https:` origin with at most a trailing `/`; undefined for anything else (`null`,
 * other schemes, user info, paths, queries). Used for the Origin header and ALLOWED_ORIGINS alike.
 */
export function normalizeOrigin(value: string): string | undefined {
  const trimmed = value.trim();
  if (/[?#]/.test(trimmed)) return undefined;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '' || url.pathname !== '/') return undefined;
  // `new URL` accepts `https:evil.example` and `https:\\evil.example`; an origin is spelled `//`.
  if (!trimmed.toLowerCase().startsWith(`${url.protocol}//`)) return undefined;
  return url.origin;
}

/**
 * The cross-site rule for a request that carries an ambient credential
 * (docs/plugin-contract.md §5):
 * - an `Origin` is allowed when it names this host (host and port as in the `Host` header; the
 *   scheme is not compared, a TLS proxy may sit in front) or is listed in `allowedOrigins`;
 *   `Origin: null` (sandboxed frames, some redirects) and unparsable values are refused;
 * - without an `Origin` (browsers omit it on same-origin GETs and navigations) the request is
 *   allowed only when `Sec-Fetch-Site` says the browser's own page or user started it
 *   (`same-origin`, `none`); `same-site` is refused, since cookies do not keep ports apart.
 * Pure: headers in, verdict out; the HTTP guard and the WebSocket handshake both use it.
 */
export function originVerdict(
  headers: IncomingHttpHeaders,
  allowedOrigins: readonly string[],
): OriginVerdict {
  const raw = headers.origin;
  if (raw === undefined) {
    const site = single(headers['sec-fetch-site'])?.trim().toLowerCase();
    return site !== undefined && FIRST_PARTY_FETCH_SITES.has(site)
      ? { allowed: true, by: 'fetch-metadata' }
      : { allowed: false, reason: 'no-origin' };
  }
  if (raw.trim().toLowerCase() === 'null') return { allowed: false, reason: 'opaque-origin' };
  const origin = normalizeOrigin(raw);
  if (origin === undefined) return { allowed: false, reason: 'malformed-origin' };
  if (sameHost(origin, headers.host)) return { allowed: true, by: 'same-host' };
  if (allowedOrigins.some((entry) => normalizeOrigin(entry) === origin))
    return { allowed: true, by: 'allowed-origin' };
  return { allowed: false, reason: 'foreign-origin' };
}

/** `originVerdict(...).allowed`: true when a request with an ambient credential may proceed. */
export function originAllowed(
  headers: IncomingHttpHeaders,
  allowedOrigins: readonly string[],
): boolean {
  return originVerdict(headers, allowedOrigins).allowed;
}

/** True when the normalised `origin` names the host the client addressed (`Host` header). */
function sameHost(origin: string, hostHeader: string | undefined): boolean {
  const host = hostHeader?.trim();
  if (host === undefined || !HOST_HEADER.test(host)) return false;
  const scheme = origin.slice(0, origin.indexOf(':') + 1);
  try {
    // Parsed with the origin's scheme, so `host:443` and `host` compare equal for https.
    return new URL(`${scheme}//${host}`).host === new URL(origin).host;
  } catch {
    return false;
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}
