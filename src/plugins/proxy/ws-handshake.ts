import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

import {
  CredentialSource,
  PORTICO_SUBPROTOCOL,
  stripBearerSubprotocol,
} from '../../auth/credential-extractor';
import { rawErrorResponse } from '../../http/raw-error-response';
import { forwardableHeaders } from './forwarded-headers';

/**
 * The WebSocket handshake as pure functions of its inputs, no sockets (docs/plugin-contract.md
 * §4): the request Portico sends the plugin for a client's upgrade, the checks on the plugin's
 * answer, the 101 the client then gets, and the plain HTTP answer to a refused upgrade. The
 * upgrade router (plugin-proxy.gateway.ts) does the I/O around them.
 */

/**
 * Not copied into the plugin's handshake: the subprotocols are offered without the bearer entry,
 * and no extension is ever negotiated, so the relay sees every message's real size (the 1009
 * limit counts what a plugin has to hold, not compressed bytes) and any RSV bit is an error.
 * Nor is the browser's Origin: Portico has checked it already (cross-site guard), and plugins
 * written for CloudCLI, whose host sends them no browser headers, may refuse an upgrade from an
 * origin they do not know (a `ws` server's `verifyClient`, say).
 */
const NOT_OFFERED: ReadonlySet<string> = new Set([
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'origin',
]);
const HEADER_VALUE_BREAK = /[\r\n]/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;
/** A `Sec-WebSocket-Key`: 16 bytes in base64 (RFC 6455 §4.1); two keys arrive joined by ", ". */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** The only WebSocket version (RFC 6455 §4.4: others are answered 426 naming it). */
const WS_VERSION = '13';

/** A client handshake refused before any 101: the HTTP status and the reason given. */
export interface HandshakeFault {
  readonly status: number;
  readonly message: string;
}

/**
 * What makes a client's handshake one no WebSocket server may accept (RFC 6455 §4.2.1), checked
 * before the token is verified or the plugin dialled: HTTP/1.0 (whose `Upgrade` a server must
 * ignore, RFC 9110 §7.8), a missing or malformed `Sec-WebSocket-Key`, a version other than 13.
 * Undefined when the handshake is well formed. The plugin would refuse these too, but only after
 * Portico had dialled it, and the client would get a 4502 for its own mistake.
 */
export function clientHandshakeFault(
  req: Pick<IncomingMessage, 'headers' | 'httpVersionMajor' | 'httpVersionMinor'>,
): HandshakeFault | undefined {
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1))
    return { status: 400, message: 'a WebSocket upgrade needs HTTP/1.1' };
  const version = req.headers['sec-websocket-version'];
  if (version?.trim() !== WS_VERSION)
    return { status: 426, message: `unsupported Sec-WebSocket-Version (only ${WS_VERSION})` };
  if (!WS_KEY.test(req.headers['sec-websocket-key']?.trim() ?? ''))
    return { status: 400, message: 'missing or invalid Sec-WebSocket-Key' };
  return undefined;
}

/** A plugin's answer to the forwarded handshake, as parsed from its response head. */
export interface UpstreamAnswer {
  readonly statusCode: number;
  /** Lower-cased header names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The headers of the plugin's handshake request: the client's end-to-end headers (credentials,
 * hop-by-hop and framing headers dropped by forwardableHeaders), then `extra` (forwarding and
 * identity headers, which win), and the client's subprotocols without the bearer entry.
 */
export function upstreamHandshakeHeaders(
  clientHeaders: IncomingHttpHeaders,
  extra: readonly Readonly<Record<string, string>>[],
  offered: readonly string[],
): Record<string, string | string[]> {
  const headers = forwardableHeaders(clientHeaders, extra, NOT_OFFERED);
  if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ');
  return headers;
}

/**
 * The request head sent to the plugin on 127.0.0.1:`port` for `path`. A value containing CR or
 * LF is dropped (parsed header values can't hold one; this is the last line of defence against
 * header injection).
 */
export function upstreamRequestHead(
  path: string,
  port: number,
  headers: Readonly<Record<string, string | string[]>>,
): string {
  let head =
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    'Connection: Upgrade\r\nUpgrade: websocket\r\n';
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (HEADER_VALUE_BREAK.test(v)) continue;
      head += `${name}: ${v}\r\n`;
    }
  }
  return head + '\r\n';
}

/**
 * Parses a plugin's response head (everything before the blank line, as latin1 text).
 * Undefined when it is not an HTTP/1.x status line followed by `name: value` lines.
 */
export function parseResponseHead(head: string): UpstreamAnswer | undefined {
  const lines = head.split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) return undefined;
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusCode: Number(status[1]), headers };
}

/** Why the plugin's answer can't be relayed to the client (then 4502), or undefined if it can. */
export function upstreamRefusal(answer: UpstreamAnswer): string | undefined {
  if (answer.statusCode !== 101) return `plugin answered the handshake with ${answer.statusCode}`;
  if (answer.headers['sec-websocket-extensions'] !== undefined)
    return 'plugin negotiated an extension that was not offered';
  return undefined;
}

/**
 * The client's 101, built from the plugin's: its `Sec-WebSocket-Accept` (the client's key went
 * to the plugin unchanged) and its chosen subprotocol. A client that sent its token as a
 * subprotocol and offered `portico` gets `portico` when the plugin chose none, since a browser
 * fails a connection whose offered subprotocols all go unanswered.
 */
export function clientSwitchingProtocols(
  answer: UpstreamAnswer,
  offered: readonly string[],
  credentialSource: CredentialSource,
): string {
  const protocol =
    answer.headers['sec-websocket-protocol'] ??
    (credentialSource === 'subprotocol' && offered.includes(PORTICO_SUBPROTOCOL)
      ? PORTICO_SUBPROTOCOL
      : undefined);
  let response =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${answer.headers['sec-websocket-accept'] ?? ''}\r\n`;
  if (protocol !== undefined) response += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  return response + '\r\n';
}

/**
 * The subprotocol answered to a client that is accepted only to be closed with a code (4404,
 * 4503, …): `portico` if offered, else the first one offered that is not the bearer entry, else
 * none. `ws` calls this as its `handleProtocols` with the offered set.
 */
export function refusalProtocol(protocols: ReadonlySet<string>): string | false {
  const offered = stripBearerSubprotocol([...protocols]);
  if (offered.includes(PORTICO_SUBPROTOCOL)) return PORTICO_SUBPROTOCOL;
  return offered[0] ?? false;
}

/** The plain HTTP answer to an upgrade refused before any 101 (docs/plugin-contract.md §4). */
export function httpRejection(status: number, message: string): string {
  // RFC 9110 §15.5.6: a 405 names the methods that are allowed. A 426 names the upgrade and
  // WebSocket version that are (RFC 9110 §15.5.22 and §7.8, RFC 6455 §4.4).
  if (status === 405) return rawErrorResponse(status, message, { Allow: 'GET' });
  if (status === 426)
    return rawErrorResponse(status, message, {
      Connection: 'Upgrade, close',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': WS_VERSION,
    });
  return rawErrorResponse(status, message);
}
