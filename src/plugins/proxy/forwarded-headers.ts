import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and ones the proxy sets itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Client headers that carry the host's credentials or could spoof an identity (CONTRACT.md §5). */
const NEVER_FORWARDED = new Set(['authorization', 'cookie', 'forwarded']);

function isForbidden(name: string): boolean {
  return (
    HOP_BY_HOP.has(name) ||
    NEVER_FORWARDED.has(name) ||
    name.startsWith('x-plugin-') ||
    name.startsWith('x-forwarded-')
  );
}

const NOTHING: ReadonlySet<string> = new Set();

/**
 * The client's request headers as they may reach a plugin: hop-by-hop headers, credentials,
 * cookies and any client-sent `x-plugin-*` / `x-forwarded-*` removed, as well as those the
 * client's Connection header names and those in `omit`; then each of `extras` added in order
 * (later ones win). Built in one object: this runs on every WebSocket handshake.
 */
export function forwardableHeaders(
  headers: IncomingHttpHeaders,
  extras: readonly Readonly<Record<string, string>>[],
  omit: ReadonlySet<string> = NOTHING,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionTokens = connectionOptions(headers.connection);
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isForbidden(name) || omit.has(name)) continue;
    if (connectionTokens !== undefined && connectionTokens.has(name)) continue;
    out[name] = value;
  }
  for (const extra of extras) {
    for (const name in extra) out[name] = extra[name] as string;
  }
  return out;
}

/** Header names listed in a Connection header, other than the usual `upgrade`/`keep-alive`. */
function connectionOptions(connection: string | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const raw of connection.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token.length === 0 || HOP_BY_HOP.has(token)) continue;
    (tokens ??= new Set()).add(token);
  }
  return tokens;
}

/** X-Forwarded-* for a request Portico received directly from the client. */
export function forwardingHeaders(req: IncomingMessage): Record<string, string> {
  const encrypted = (req.socket as TLSSocket).encrypted === true;
  const out: Record<string, string> = {
    'x-forwarded-proto': encrypted ? 'https' : 'http',
  };
  if (req.socket.remoteAddress !== undefined) out['x-forwarded-for'] = req.socket.remoteAddress;
  if (typeof req.headers.host === 'string') out['x-forwarded-host'] = req.headers.host;
  return out;
}

/** Response headers of a plugin that must not be copied onto Portico's own response. */
export function isHopByHopResponseHeader(name: string): boolean {
  return HOP_BY_HOP.has(name);
}
