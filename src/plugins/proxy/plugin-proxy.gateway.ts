import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

import {
  BeforeApplicationShutdown,
  Inject,
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
  stripBearerSubprotocol,
} from '../../auth/credential-extractor';
import { CROSS_SITE_REFUSED, isAmbientCredential, originVerdict } from '../../auth/origin-policy';
import type { Principal } from '../../auth/principal';
import { TokenVerifier } from '../../auth/token-verifier.service';
import { PorticoConfig } from '../../config/portico-config';
import { UpgradeRoutes } from '../../http/upgrade-routes';
import { debugEnabled } from '../../logging/debug-enabled';
import { redactUrl } from '../../logging/redact-url';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { PluginIdentityService } from '../secrets/plugin-identity.service';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { isPluginName } from '../shared/plugin.types';
import type { PluginName } from '../shared/plugin.types';
import { bodyFraming, forwardingHeaders } from './forwarded-headers';
import { PluginUpstreams } from './plugin-upstreams';
import { RelayRegistry } from './relay-registry';
import { UPSTREAM_DIALER, UpstreamDialer, UpstreamHandshake } from './upstream-dialer';
import { CloseCode } from './ws-frame';
import {
  clientHandshakeFault,
  clientSwitchingProtocols,
  httpRejection,
  refusalProtocol,
  upstreamHandshakeHeaders,
  upstreamRefusal,
  upstreamRequestHead,
} from './ws-handshake';
import { upstreamWsPath } from './ws-path';

/** `/plugin-ws/<name>[/sub/path][?query]` */
const ROUTE = /^\/plugin-ws\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/;
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * The close code for each failure that can only be told after the client's 101 (a browser
 * can't read an HTTP status of a refused upgrade): the plugin is unknown, not running, or its
 * server refused or did not answer the forwarded handshake (docs/plugin-contract.md §4).
 */
const CLOSE_CODE_FOR: Readonly<Partial<Record<PluginExceptionCode, number>>> = {
  [PluginExceptionCode.UNKNOWN_PLUGIN]: CloseCode.UnknownPlugin,
  [PluginExceptionCode.NOT_RUNNING]: CloseCode.PluginNotRunning,
  [PluginExceptionCode.UPSTREAM_REFUSED]: CloseCode.UpstreamRefused,
  [PluginExceptionCode.UPSTREAM_TIMEOUT]: CloseCode.UpstreamTimeout,
};

class HandshakeRejection extends Error {
  public constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `/plugin-ws/:name`, the WebSocket proxy's upgrade router (docs/plugin-contract.md §4,
 * docs/architecture.md). It is a provider that owns the HTTP server's `upgrade` event from
 * bootstrap to shutdown (except the paths of Portico's own gateways, UpgradeRoutes), not a stock
 * `@WebSocketGateway`: the stock adapter answers the client's
 * 101 itself and then parses every frame, while here the client must be authenticated and the
 * plugin's own handshake finished before the client gets its 101 (so nothing the client sends
 * right after it can be lost, and a refusal is a plain HTTP status). The router routes, drains,
 * authenticates and rejects; the handshake is built by the pure functions in ws-handshake.ts; the
 * spliced connections live in the RelayRegistry. It answers every upgrade on the server, with a
 * catch-all: no error here may become an unhandled rejection, which would end the process.
 */
@Injectable()
export class PluginProxyGateway
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(PluginProxyGateway.name);
  /** Sockets between upgrade and relay (dialing the plugin). */
  private readonly pending = new Set<Socket>();
  /**
   * Clients accepted only to be told why they cannot connect (4404, 4503, ...), answered with
   * the subprotocol `refusalProtocol` picks from what they offered.
   */
  private readonly rejector = new WebSocketServer({
    noServer: true,
    clientTracking: true,
    handleProtocols: refusalProtocol,
  });
  private server: Server | undefined;
  private draining = false;
  /** Decided once: the per-handshake debug line is not even built otherwise. */
  private readonly debug: boolean;
  private readonly onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    // Whatever goes wrong, it must not become an unhandled rejection: that ends the process.
    this.handleUpgrade(req, socket, head).catch((err: unknown) => this.failed(req, socket, err));
  };

  public constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly config: PorticoConfig,
    private readonly verifier: TokenVerifier,
    private readonly upstreams: PluginUpstreams,
    private readonly identity: PluginIdentityService,
    private readonly relays: RelayRegistry,
    private readonly metrics: PorticoMetrics,
    @Inject(UPSTREAM_DIALER) private readonly dialer: UpstreamDialer,
    private readonly routes: UpgradeRoutes,
  ) {
    this.debug = debugEnabled(config.LOG_LEVEL);
  }

  public onApplicationBootstrap(): void {
    this.server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    this.server.on('upgrade', this.onUpgrade);
  }

  /** Host shutdown: refuse new upgrades, close every connection with 1001, wait for them. */
  public async beforeApplicationShutdown(): Promise<void> {
    // Upgrades that still arrive are answered 503 until the server closes.
    this.draining = true;
    for (const socket of this.pending) socket.destroy();
    for (const ws of this.rejector.clients) ws.terminate();
    this.rejector.close();
    await this.relays.closeAll(CloseCode.GoingAway, 'server shutting down');
  }

  public onApplicationShutdown(): void {
    this.server?.off('upgrade', this.onUpgrade);
  }

  /** The catch-all: an error nothing else handled is a 500 (or a reset, if the 101 left). */
  private failed(req: IncomingMessage, socket: Socket, err: unknown): void {
    try {
      this.logger.error({
        event: 'ws_upgrade_failed',
        url: redactUrl(req.url ?? ''),
        reason: err instanceof Error ? err.message : String(err),
      });
      if (!socket.destroyed) this.reject(socket, req, 500, 'internal error');
    } catch {
      socket.destroy();
    }
  }

  private async handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    // A path a Nest gateway owns (`/api/events`): its adapter answers it.
    if (this.routes.isClaimed(req.url)) return;
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
    const fault = clientHandshakeFault(req);
    if (fault !== undefined) return this.reject(socket, req, fault.status, fault.message);
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

    let target;
    try {
      target = this.upstreams.upstream(name, user);
    } catch (err) {
      // A missing role is refused like missing credentials: before any 101.
      if (err instanceof PluginException && err.code === PluginExceptionCode.FORBIDDEN)
        return this.reject(socket, req, 403, err.message);
      return this.closeAfterAccept(req, socket, head, err, name);
    }

    // The plugin is offered the client's subprotocols without the bearer token.
    const offered = stripBearerSubprotocol(req.headers['sec-websocket-protocol']);
    const headers = upstreamHandshakeHeaders(
      req.headers,
      [forwardingHeaders(req), this.identity.headersFor(name, user)],
      offered,
    );
    let upstream: UpstreamHandshake;
    this.pending.add(socket);
    try {
      upstream = await this.dialer.dial({
        port: target.port,
        head: upstreamRequestHead(path, target.port, headers),
        timeoutMs: this.config.WS_UPSTREAM_TIMEOUT_MS,
      });
    } catch (err) {
      return this.closeAfterAccept(req, socket, head, err, name);
    } finally {
      this.pending.delete(socket);
    }
    if (socket.destroyed || this.draining) {
      upstream.socket.destroy();
      socket.destroy();
      return;
    }
    const refusal = upstreamRefusal(upstream);
    if (refusal !== undefined) {
      upstream.socket.destroy();
      const refused = new PluginException(PluginExceptionCode.UPSTREAM_REFUSED, refusal);
      return this.closeAfterAccept(req, socket, head, refused, name);
    }

    socket.write(clientSwitchingProtocols(upstream, offered, credential.source));
    this.relays.start({
      plugin: name,
      generation: target.generation,
      user,
      maxMessageBytes: target.descriptor.manifest?.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      client: socket,
      upstream: upstream.socket,
      clientHead: head,
      upstreamHead: upstream.rest,
    });
    this.metrics.wsHandshakes.inc({ plugin: name, outcome: 'relayed' });
    socket.resume();
    upstream.socket.resume();
    if (this.debug)
      this.logger.debug({ plugin: name, event: 'ws_open', user: user.id, path: redactUrl(path) });
  }

  /** The plugin a URL names, if it exists: metric labels never take arbitrary client input. */
  private knownPlugin(url: string | undefined): string {
    const segment = ROUTE.exec(url ?? '')?.[1];
    return this.upstreams.metricLabel(segment === undefined ? undefined : decodeSegment(segment));
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

  /** Plain HTTP answer to a refused upgrade, before any 101 (docs/plugin-contract.md §4). */
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
    socket.end(httpRejection(status, message), () => socket.destroy());
  }

  /** Completes the handshake only to close at once with a code a browser can read. */
  private closeAfterAccept(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    err: unknown,
    name: PluginName,
  ): void {
    const code = err instanceof PluginException ? CLOSE_CODE_FOR[err.code] : undefined;
    // Anything else is a bug: the catch-all answers 500.
    if (code === undefined || !(err instanceof PluginException)) throw err;
    if (socket.destroyed) return;
    this.metrics.wsHandshakes.inc({ plugin: this.knownPlugin(req.url), outcome: String(code) });
    this.logger.warn({ plugin: name, event: 'ws_unavailable', code, reason: err.message });
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
