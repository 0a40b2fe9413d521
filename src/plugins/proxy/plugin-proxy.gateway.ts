import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { WebSocket, WebSocketServer } from 'ws';

import { AuthException } from '../../auth/auth.exception';
import {
  Credential,
  extractCredential,
  PORTICO_SUBPROTOCOL,
  stripBearerSubprotocol,
} from '../../auth/credential-extractor';
import { CROSS_SITE_REFUSED, isAmbientCredential, originVerdict } from '../../auth/origin-policy';
import type { Principal } from '../../auth/principal';
import { CLOCK_TOLERANCE_SECONDS, TokenVerifier } from '../../auth/token-verifier.service';
import { PorticoConfig } from '../../config/portico-config';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { debugEnabled } from '../../logging/debug-enabled';
import { redactUrl } from '../../logging/redact-url';
import {
  PLUGIN_EXCEPTION_STATUS,
  PluginException,
  PluginExceptionCode,
} from '../shared/plugin.exception';
import { canAccess } from '../shared/plugin-access';
import { isPluginName } from '../shared/plugin.types';
import type { PluginName } from '../shared/plugin.types';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import { PluginsService } from '../plugins.service';
import type { ExitInfo } from '../process/plugin-supervisor';
import { PluginProcessManager } from '../process/plugin-process-manager.service';
import { PluginIdentityService } from '../secrets/plugin-identity.service';
import { bodyFraming, forwardableHeaders, forwardingHeaders } from './forwarded-headers';
import { dialUpstream } from './upstream-dialer';
import { CloseCode } from './ws-frame';
import { upstreamWsPath } from './ws-path';
import { RelayHooks, WsRelay } from './ws-relay';

/** `/plugin-ws/<name>[/sub/path][?query]` */
const ROUTE = /^\/plugin-ws\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/;
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/**
 * Not copied into the plugin's handshake: the subprotocols are offered without the bearer entry,
 * and no extension is ever negotiated, so the relay sees every message's real size (the 1009
 * limit counts what a plugin has to hold, not compressed bytes) and any RSV bit is an error.
 */
const NOT_OFFERED: ReadonlySet<string> = new Set([
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);
/** After a plugin socket drops without a close frame, how long to wait for its exit event. */
const EXIT_WAIT_MS = 1000;

class HandshakeRejection extends Error {
  public constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The WebSocket proxy (CONTRACT.md §4). It owns the HTTP server's `upgrade` event: every
 * upgrade is authenticated before anything else, the plugin's handshake is completed before
 * the client's, and the two sockets are then spliced by a WsRelay. No stock Nest gateway runs
 * on this server, so this router answers every upgrade itself.
 */
@Injectable()
export class PluginProxyGateway
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown, RelayHooks
{
  private readonly logger = new Logger(PluginProxyGateway.name);
  private readonly relays = new Set<WsRelay>();
  /** Sockets between upgrade and relay (dialing the plugin). */
  private readonly pending = new Set<Socket>();
  /** Clients accepted only to be told why they cannot connect (4404, 4503, ...). */
  private readonly rejector = new WebSocketServer({ noServer: true, clientTracking: true });
  private readonly lostWaits = new Map<WsRelay, NodeJS.Timeout>();
  private readonly lastExit = new Map<PluginName, ExitInfo>();
  private server: Server | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private draining = false;
  /** Decided once: the per-handshake debug line is not even built otherwise. */
  private readonly debug: boolean;
  private readonly onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    // Whatever goes wrong, it must not become an unhandled rejection: that ends the process.
    this.handleUpgrade(req, socket, head).catch((err: unknown) => {
      this.logger.error({
        event: 'ws_upgrade_failed',
        url: redactUrl(req.url ?? ''),
        reason: err instanceof Error ? err.message : String(err),
      });
      if (!socket.destroyed) this.reject(socket, req, 500, 'internal error');
    });
  };
  private readonly unsubscribeAccess: () => void;

  public constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly config: PorticoConfig,
    private readonly verifier: TokenVerifier,
    private readonly plugins: PluginsService,
    registry: PluginRegistry,
    private readonly processes: PluginProcessManager,
    private readonly identity: PluginIdentityService,
    private readonly metrics: PorticoMetrics,
  ) {
    this.debug = debugEnabled(config.LOG_LEVEL);
    this.unsubscribeAccess = registry.onAccessChange(this.onAccessChange);
  }

  public onApplicationBootstrap(): void {
    this.server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    this.server.on('upgrade', this.onUpgrade);
    this.processes.on('stopping', this.onPluginStopping);
    this.processes.on('exit', this.onPluginExit);
    if (this.config.WS_PING_INTERVAL_MS > 0) {
      this.pingTimer = setInterval(() => {
        for (const relay of this.relays) relay.tick();
      }, this.config.WS_PING_INTERVAL_MS);
    }
  }

  /** Host shutdown: refuse new upgrades, close every connection with 1001, wait for them. */
  public async beforeApplicationShutdown(): Promise<void> {
    // Upgrades that still arrive are answered 503 until the server closes.
    this.draining = true;
    this.processes.off('stopping', this.onPluginStopping);
    this.processes.off('exit', this.onPluginExit);
    this.unsubscribeAccess();
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    for (const timer of this.lostWaits.values()) clearTimeout(timer);
    this.lostWaits.clear();
    for (const socket of this.pending) socket.destroy();
    for (const relay of this.relays) relay.closeBoth(CloseCode.GoingAway, 'server shutting down');
    for (const ws of this.rejector.clients) ws.terminate();
    this.rejector.close();
    // Each relay destroys what is left of itself within a second of its close frames.
    const deadline = Date.now() + this.config.SHUTDOWN_GRACE_MS;
    while (this.relays.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  public onApplicationShutdown(): void {
    this.server?.off('upgrade', this.onUpgrade);
  }

  public upstreamLost(relay: WsRelay): void {
    const exit = this.lastExit.get(relay.plugin);
    if (exit !== undefined && exit.generation === relay.generation) {
      this.closeForExit(relay, exit.willRestart);
      return;
    }
    // The socket usually drops a moment before the exit is seen; wait for it briefly.
    this.lostWaits.set(
      relay,
      setTimeout(() => {
        this.lostWaits.delete(relay);
        relay.closeClient(CloseCode.InternalError, 'plugin connection lost');
      }, EXIT_WAIT_MS),
    );
  }

  public closed(relay: WsRelay): void {
    if (this.relays.delete(relay)) this.metrics.wsOpen.dec({ plugin: relay.plugin });
    const wait = this.lostWaits.get(relay);
    if (wait !== undefined) clearTimeout(wait);
    this.lostWaits.delete(relay);
  }

  public ended(relay: WsRelay, code: number, reason: string): void {
    this.logger.warn({
      plugin: relay.plugin,
      event: 'ws_ended',
      code,
      reason,
      user: relay.user.id,
    });
  }

  private readonly onPluginStopping = (
    name: PluginName,
    generation: number,
    willRestart: boolean,
  ): void => {
    for (const relay of this.relays) {
      if (relay.plugin === name && relay.generation === generation) {
        const code = willRestart ? CloseCode.ServiceRestart : CloseCode.InternalError;
        relay.closeBoth(code, willRestart ? 'plugin restarting' : 'plugin stopped');
      }
    }
  };

  private readonly onPluginExit = (name: PluginName, info: ExitInfo): void => {
    this.lastExit.set(name, info);
    for (const [relay, timer] of this.lostWaits) {
      if (relay.plugin === name && relay.generation === info.generation) {
        clearTimeout(timer);
        this.lostWaits.delete(relay);
        this.closeForExit(relay, info.willRestart);
      }
    }
    for (const relay of this.relays) {
      if (relay.plugin === name && relay.generation === info.generation)
        this.closeForExit(relay, info.willRestart);
    }
  };

  /** An admin changed who may use a plugin: sessions of users who lost it end (4403). */
  private readonly onAccessChange = (name: PluginName): void => {
    if (!this.plugins.exists(name)) return;
    const descriptor = this.plugins.get(name);
    for (const relay of this.relays) {
      if (relay.plugin === name && !canAccess(descriptor, relay.user)) {
        this.logger.log({ plugin: name, event: 'ws_access_revoked', user: relay.user.id });
        relay.closeBoth(CloseCode.AccessRevoked, 'access to this plugin was revoked');
      }
    }
  };

  private closeForExit(relay: WsRelay, willRestart: boolean): void {
    if (willRestart) relay.closeClient(CloseCode.ServiceRestart, 'plugin restarting');
    else relay.closeClient(CloseCode.InternalError, 'plugin stopped');
  }

  private async handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    const url = req.url ?? '/';
    const match = ROUTE.exec(url);
    if (this.draining) return this.reject(socket, req, 503, 'server shutting down');
    if (match === null) return this.reject(socket, req, 404, 'no WebSocket endpoint here');
    const name = decodeSegment(match[1] ?? '');
    if (name === undefined || !isPluginName(name))
      return this.reject(socket, req, 400, 'invalid plugin name');
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket')
      return this.reject(socket, req, 400, 'not a WebSocket upgrade');
    if (req.method !== 'GET')
      return this.reject(socket, req, 405, 'a WebSocket upgrade must use GET');
    // A handshake has no body; one that announces one could smuggle a request to the plugin.
    if (bodyFraming(req.headers)?.kind !== 'none')
      return this.reject(socket, req, 400, 'a WebSocket upgrade must not have a body');
    const path = upstreamWsPath(match[2], match[3]);
    if (path === undefined) return this.reject(socket, req, 400, 'invalid WebSocket path');

    let credential: Credential | undefined;
    let user: Principal;
    try {
      credential = extractCredential(req);
      if (credential === undefined) throw new HandshakeRejection(401, 'missing credentials');
      user = await this.verifier.verify(credential.token);
      this.checkOrigin(req, credential);
    } catch (err) {
      if (err instanceof HandshakeRejection)
        return this.reject(socket, req, err.status, err.message);
      if (err instanceof AuthException) return this.reject(socket, req, 401, err.message);
      throw err;
    }
    if (socket.destroyed) return;

    const offered = stripBearerSubprotocol(req.headers['sec-websocket-protocol']);
    let target;
    try {
      target = this.plugins.upstream(name, user);
    } catch (err) {
      // A missing role is refused like missing credentials: before any 101.
      if (err instanceof PluginException && err.code === PluginExceptionCode.FORBIDDEN)
        return this.reject(socket, req, 403, err.message);
      return this.closeAfterAccept(req, socket, head, offered, err, name);
    }

    // The plugin is offered the client's subprotocols without the bearer token.
    const headers = forwardableHeaders(
      req.headers,
      [forwardingHeaders(req), this.identity.headersFor(name, user)],
      NOT_OFFERED,
    );
    if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ');

    this.pending.add(socket);
    let upstream;
    try {
      upstream = await dialUpstream({
        port: target.port,
        path,
        headers,
        timeoutMs: this.config.WS_UPSTREAM_TIMEOUT_MS,
      });
    } catch (err) {
      this.pending.delete(socket);
      return this.closeAfterAccept(req, socket, head, offered, err, name);
    } finally {
      this.pending.delete(socket);
    }
    if (socket.destroyed || this.draining) {
      upstream.socket.destroy();
      socket.destroy();
      return;
    }
    const refusal =
      upstream.statusCode !== 101
        ? `plugin answered the handshake with ${upstream.statusCode}`
        : upstream.headers['sec-websocket-extensions'] !== undefined
          ? 'plugin negotiated an extension that was not offered'
          : undefined;
    if (refusal !== undefined) {
      upstream.socket.destroy();
      const refused = new PluginException(PluginExceptionCode.UPSTREAM_REFUSED, refusal);
      return this.closeAfterAccept(req, socket, head, offered, refused, name);
    }

    const chosen = upstream.headers['sec-websocket-protocol'];
    const protocol =
      chosen ??
      (credential.source === 'subprotocol' && offered.includes(PORTICO_SUBPROTOCOL)
        ? PORTICO_SUBPROTOCOL
        : undefined);
    let response =
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${upstream.headers['sec-websocket-accept'] ?? ''}\r\n`;
    if (protocol !== undefined) response += `Sec-WebSocket-Protocol: ${protocol}\r\n`;

    const relay = new WsRelay(
      {
        plugin: name,
        generation: target.generation,
        user,
        maxMessageBytes: target.descriptor.manifest?.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      },
      socket,
      upstream.socket,
      this,
    );
    this.relays.add(relay);
    this.metrics.wsOpen.inc({ plugin: name });
    this.metrics.wsHandshakes.inc({ plugin: name, outcome: 'relayed' });
    socket.write(response + '\r\n');
    relay.start(head, upstream.rest);
    // The session ends with its credential: when verification would start refusing the token.
    if (user.exp !== undefined)
      relay.endAfter(
        (user.exp + CLOCK_TOLERANCE_SECONDS) * 1000 - Date.now(),
        CloseCode.TokenExpired,
        'token expired',
      );
    socket.resume();
    upstream.socket.resume();
    if (this.debug)
      this.logger.debug({ plugin: name, event: 'ws_open', user: user.id, path: redactUrl(path) });
  }

  /** The plugin a URL names, if it exists: metric labels never take arbitrary client input. */
  private knownPlugin(url: string | undefined): string {
    const segment = ROUTE.exec(url ?? '')?.[1];
    const name = segment === undefined ? undefined : decodeSegment(segment);
    return name !== undefined && this.plugins.exists(name) ? name : '-';
  }

  /**
   * Cross-site WebSocket hijacking guard: an ambient credential (cookie, `?token=`) needs a
   * first-party Origin, by the same rule as HTTP (origin-policy.ts). Browsers always send
   * Origin on a WebSocket handshake, so one without it is not a browser acting for a page, and
   * holds the credential itself: it is let in.
   */
  private checkOrigin(req: IncomingMessage, credential: Credential): void {
    if (!isAmbientCredential(credential.source)) return;
    const verdict = originVerdict(req.headers, this.config.ALLOWED_ORIGINS);
    if (verdict.allowed || verdict.reason === 'no-origin') return;
    throw new HandshakeRejection(403, CROSS_SITE_REFUSED);
  }

  /** Plain HTTP answer to a refused upgrade, before any 101 (CONTRACT.md §4). */
  private reject(socket: Socket, req: IncomingMessage, status: number, message: string): void {
    this.metrics.wsHandshakes.inc({ plugin: this.knownPlugin(req.url), outcome: String(status) });
    this.logger.warn({
      event: 'ws_rejected',
      status,
      reason: message,
      url: redactUrl(req.url ?? ''),
    });
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const error = STATUS_CODES[status] ?? 'Error';
    const body = JSON.stringify({ statusCode: status, error, message });
    // RFC 9110 §15.5.6: a 405 names the methods that are allowed.
    const allow = status === 405 ? 'Allow: GET\r\n' : '';
    socket.end(
      `HTTP/1.1 ${status} ${error}\r\nConnection: close\r\n${allow}Content-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  }

  /** Completes the handshake only to close at once with a code a browser can read. */
  private closeAfterAccept(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    offered: string[],
    err: unknown,
    name: PluginName,
  ): void {
    if (!(err instanceof PluginException)) throw err;
    if (socket.destroyed) return;
    const code = PLUGIN_EXCEPTION_STATUS[err.code].ws;
    this.metrics.wsHandshakes.inc({ plugin: this.knownPlugin(req.url), outcome: String(code) });
    this.logger.warn({ plugin: name, event: 'ws_unavailable', code, reason: err.message });
    const protocol = offered.includes(PORTICO_SUBPROTOCOL) ? PORTICO_SUBPROTOCOL : offered[0];
    // ws negotiates from the header; offer it only what we are willing to answer.
    req.headers['sec-websocket-protocol'] = protocol;
    if (protocol === undefined) delete req.headers['sec-websocket-protocol'];
    this.rejector.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.on('error', () => undefined);
      ws.close(code, err.message.slice(0, 120));
    });
  }
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
