import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

import type { LoggerService } from '@nestjs/common';

import { PorticoConfig } from '../config/portico-config';
import { redactUrl } from '../logging/redact-url';
import { addressMatcher } from './client-address';
import { HeaderPhaseCap } from './header-phase-cap';
import { rawErrorResponse } from './raw-error-response';

/** Refused connections are logged at most twice a minute per client. */
const CAP_LOG_WINDOW_MS = 60_000;
/**
 * How long a new connection may take to send its request head before it counts against
 * MAX_HEADER_PHASE_CONNECTIONS_PER_IP: a browser sends it at once, and after a reconnect storm
 * Portico reads a queued connection's head within milliseconds of accepting it.
 */
export const HEADER_PHASE_GRACE_MS = 1_000;
/** Connections one address may open within that grace: a storm through a NAT, not a flood. */
export const HEADER_PHASE_BURST_FACTOR = 64;

/**
 * Node's own default is 30 s: it only looks for expired header phases that often, so a header
 * timeout bites up to that much late. A tenth of the timeout, between 100 ms and 1 s, keeps the
 * bound close (HTTP_HEADERS_TIMEOUT_MS + at most 1 s) for a scan of in-progress requests only.
 */
export function connectionsCheckingInterval(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(100, Math.floor(headersTimeoutMs / 10)));
}

/**
 * CONNECT asks for a tunnel (a forward proxy's job), which nothing here serves. Node drops such a
 * connection without a word when nobody listens for `connect`; it is answered 501 with the usual
 * JSON error body instead, and logged once, without the client's target beyond its redaction.
 */
function refuseConnect(
  req: IncomingMessage,
  socket: Duplex,
  logger: Pick<LoggerService, 'warn'>,
): void {
  logger.warn({ event: 'connect_refused', status: 501, url: redactUrl(req.url ?? '') });
  socket.on('error', () => undefined);
  socket.end(rawErrorResponse(501, 'CONNECT is not supported'));
}

/**
 * Bounds what a client that never finishes its request can hold (slowloris, docs/plugin-contract.md §6):
 * how long the header phase may last (WebSocket upgrade requests included: their head goes
 * through the same parser), how long a whole request may take, how long an idle kept-alive
 * connection stays, and how many connections one client may have in the header phase; and answers
 * CONNECT. Call before the server listens: Node reads the checking interval when it starts listening.
 */
export function applyHttpServerLimits(
  server: Server,
  config: PorticoConfig,
  logger: Pick<LoggerService, 'warn'>,
): HeaderPhaseCap | undefined {
  server.on('connect', (req: IncomingMessage, socket: Duplex) =>
    refuseConnect(req, socket, logger),
  );
  server.headersTimeout = config.HTTP_HEADERS_TIMEOUT_MS;
  server.requestTimeout = config.HTTP_REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = config.HTTP_KEEP_ALIVE_TIMEOUT_MS;
  // A constructor option in Node's docs; the server reads the property when it starts listening.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
    connectionsCheckingInterval(config.HTTP_HEADERS_TIMEOUT_MS);
  if (config.MAX_HEADER_PHASE_CONNECTIONS_PER_IP === 0) return undefined;
  const cap = new HeaderPhaseCap({
    maxPerClient: config.MAX_HEADER_PHASE_CONNECTIONS_PER_IP,
    graceMs: HEADER_PHASE_GRACE_MS,
    maxBurstPerClient: config.MAX_HEADER_PHASE_CONNECTIONS_PER_IP * HEADER_PHASE_BURST_FACTOR,
    exempt: addressMatcher(config.HEADER_PHASE_CAP_EXEMPT),
    logWindowMs: CAP_LOG_WINDOW_MS,
    log: (line) => logger.warn(line),
  });
  cap.attach(server);
  return cap;
}
