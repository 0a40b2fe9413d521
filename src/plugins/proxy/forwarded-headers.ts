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

/**
 * The client's request headers as they may reach a plugin: hop-by-hop headers, credentials,
 * cookies and any client-sent `x-plugin-*` / `x-forwarded-*` removed; `extra` added (identity,
 * forwarding). Values listed in `connectionTokens` (named by the client's Connection header)
 * are removed too.
 */
export function forwardableHeaders(
  headers: IncomingHttpHeaders,
  extra: Record<string, string>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionTokens = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t.length > 0),
  );
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || isForbidden(name) || connectionTokens.has(name)) continue;
    out[name] = value;
  }
  return { ...out, ...extra };
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
