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

/**
 * Message framing. Portico decides how a forwarded body is framed (RPC) or that there is none
 * (WebSocket handshake), so the client's framing headers are never copied, and a client's
 * Connection header can never make Portico forget them (docs/plugin-contract.md §3: request smuggling).
 */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

/** Headers a client's Connection header may not remove: framing and the WebSocket handshake. */
const NOT_NAMEABLE = new Set([
  ...FRAMING,
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
]);

/**
 * Client headers that carry the host's credentials, or that a plugin might take for the client's
 * address or identity (docs/plugin-contract.md §5). Compared after `_` → `-`, because several servers and
 * frameworks read `x_real_ip` as `x-real-ip`.
 */
const NEVER_FORWARDED = new Set([
  'authorization',
  'cookie',
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
]);

/** The name a header may be read as by some plugin framework: lower case, `_` as `-`. */
function canonical(name: string): string {
  return name.includes('_') ? name.replace(/_/g, '-') : name;
}

/** True for a client header that must never reach a plugin, however it is spelled. */
export function isForbiddenRequestHeader(name: string): boolean {
  const n = canonical(name.toLowerCase());
  return (
    HOP_BY_HOP.has(n) ||
    FRAMING.has(n) ||
    NEVER_FORWARDED.has(n) ||
    n.startsWith('x-plugin-') ||
    n.startsWith('x-forwarded-')
  );
}

const NOTHING: ReadonlySet<string> = new Set();

/**
 * The client's request headers as they may reach a plugin: hop-by-hop and framing headers,
 * credentials, cookies, client-address headers and any client-sent `x-plugin-*` /
 * `x-forwarded-*` (in any spelling) removed, as well as end-to-end headers the client's
 * Connection header names and those in `omit`; then each of `extras` added in order (later ones
 * win). Framing is the caller's to set. Built in one object: this runs on every handshake.
 */
export function forwardableHeaders(
  headers: IncomingHttpHeaders,
  extras: readonly Readonly<Record<string, string>>[],
  omit: ReadonlySet<string> = NOTHING,
): Record<string, string | string[]> {
  // No prototype: a client header called `__proto__` is just a (dropped) name, not a setter.
  const out = Object.create(null) as Record<string, string | string[]>;
  const connectionTokens = connectionOptions(headers.connection);
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isForbiddenRequestHeader(name) || omit.has(name)) continue;
    if (connectionTokens !== undefined && connectionTokens.has(name)) continue;
    out[name] = value;
  }
  for (const extra of extras) {
    for (const name in extra) out[name] = extra[name] as string;
  }
  return out;
}

/** Header names listed in a Connection header that it may remove (never framing). */
function connectionOptions(connection: string | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const raw of connection.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token.length === 0 || HOP_BY_HOP.has(token) || NOT_NAMEABLE.has(token)) continue;
    (tokens ??= new Set()).add(token);
  }
  return tokens;
}

/** The body framing of a request as Node's parser accepted it. */
export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' };

/**
 * How a request's body is framed, or undefined when its framing is ambiguous or unsupported
 * (RFC 9112 §6.3: both Content-Length and Transfer-Encoding, several different lengths, any
 * transfer coding but a single `chunked`). Node's parser refuses most of these already; this is the proxy's own
 * check, so a parser setting can never turn one into a smuggled request.
 */
export function bodyFraming(headers: IncomingHttpHeaders): BodyFraming | undefined {
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) return undefined;
    // Only plain `chunked`: a body under other codings would reach the plugin as if it had none.
    return te.trim().toLowerCase() === 'chunked' ? { kind: 'chunked' } : undefined;
  }
  if (cl === undefined) return { kind: 'none' };
  // Node joins repeated Content-Length values with ", " only when they are equal; be strict.
  const values = new Set(cl.split(',').map((v) => v.trim()));
  if (values.size !== 1) return undefined;
  const [only] = [...values];
  if (only === undefined || !/^\d{1,15}$/.test(only)) return undefined;
  const length = Number(only);
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
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
