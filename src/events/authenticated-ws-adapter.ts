import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

import { INestApplicationContext, Logger } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { WebSocket, WebSocketServer } from 'ws';

import { AuthException } from '../auth/auth.exception';
import { extractCredential } from '../auth/credential-extractor';
import { CROSS_SITE_REFUSED, isAmbientCredential, originVerdict } from '../auth/origin-policy';
import type { AuthenticatedRequest, Principal } from '../auth/principal';
import { TokenVerifier } from '../auth/token-verifier.service';
import { PorticoConfig } from '../config/portico-config';
import { pathOf, UpgradeRoutes } from '../http/upgrade-routes';
import { redactUrl } from '../logging/redact-url';
import { httpRejection, refusalProtocol } from '../plugins/proxy/ws-handshake';

/** Nest's WsAdapter attaches its gateways to the application's HTTP server on this "port". */
const APPLICATION_SERVER = 0;

/** A gateway's ws server as WsAdapter registers it (it adds `path`). */
type GatewayServer = WebSocketServer & { path: string };

class Refusal extends Error {
  public constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Nest's WsAdapter for Portico's own gateways (`/api/events`), changed where the stock one does
 * not fit a server that also proxies plugin WebSockets:
 * - it answers only the upgrades of its gateways' paths and leaves every other one untouched
 *   (the stock adapter destroys them), so `/plugin-ws/*` reaches the plugin proxy as it came;
 *   the paths are claimed in UpgradeRoutes, which the proxy consults;
 * - the client is authenticated before its 101, with the same credential forms, TokenVerifier
 *   and cross-site rule as the plugin proxy (docs/plugin-contract.md §5): a refusal is a plain
 *   HTTP 401/403, and the gateway gets the user as `request.user`;
 * - a client offering the bearer subprotocol is answered `portico` (or its first other entry),
 *   as browsers require an offered subprotocol to be picked.
 */
export class AuthenticatedWsAdapter extends WsAdapter {
  private readonly upgradeLogger = new Logger('EventsUpgrade');

  public constructor(private readonly app: INestApplicationContext) {
    super(app);
  }

  public override create(
    port: number,
    options?: Record<string, unknown> & { namespace?: string; server?: unknown; path?: string },
  ): GatewayServer {
    // ws calls handleProtocols only when the client offered subprotocols.
    return super.create(port, {
      ...options,
      handleProtocols: (protocols: Set<string>) => refusalProtocol(protocols),
    }) as GatewayServer;
  }

  protected override addWsServerToRegistry<T extends Record<'path', string>>(
    wsServer: T,
    port: number,
    path: string,
  ): void {
    super.addWsServerToRegistry(wsServer, port, path);
    if (port === APPLICATION_SERVER) this.app.get(UpgradeRoutes).claim(wsServer.path);
  }

  protected override ensureHttpServerExists(port: number, httpServer?: Server): Server | undefined {
    // Gateways on a port of their own keep the stock behaviour (Portico declares none).
    if (port !== APPLICATION_SERVER || httpServer === undefined)
      return super.ensureHttpServerExists(port, httpServer);
    if (this.httpServersRegistry.has(port)) return undefined;
    this.httpServersRegistry.set(port, httpServer);
    httpServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const path = pathOf(req.url);
      const servers = (this.wsServersRegistry.get(port) ?? []) as GatewayServer[];
      const target = servers.find((s) => s.path === path);
      // Not a gateway's path: the plugin proxy answers it (or says 404).
      if (target === undefined) return;
      socket.on('error', () => undefined);
      this.authenticate(req).then(
        (user) => this.accept(target, req as AuthenticatedRequest, socket, head, user),
        (err: unknown) => this.refuse(req, socket, err),
      );
    });
    return httpServer;
  }

  private async authenticate(req: IncomingMessage): Promise<Principal> {
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket')
      throw new Refusal(400, 'not a WebSocket upgrade');
    if (req.method !== 'GET') throw new Refusal(405, 'a WebSocket upgrade must use GET');
    const credential = extractCredential(req);
    if (credential === undefined) throw new Refusal(401, 'missing credentials');
    let user: Principal;
    try {
      user = await this.app.get(TokenVerifier).verify(credential.token);
    } catch (err) {
      if (err instanceof AuthException) throw new Refusal(401, err.message);
      throw err;
    }
    if (isAmbientCredential(credential.source)) {
      const verdict = originVerdict(req.headers, this.app.get(PorticoConfig).ALLOWED_ORIGINS);
      if (!verdict.allowed && verdict.reason !== 'no-origin')
        throw new Refusal(403, CROSS_SITE_REFUSED);
    }
    return user;
  }

  private accept(
    server: GatewayServer,
    req: AuthenticatedRequest,
    socket: Socket,
    head: Buffer,
    user: Principal,
  ): void {
    if (socket.destroyed) return;
    req.user = user;
    server.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      server.emit('connection', ws, req);
    });
  }

  /** A plain HTTP answer before any 101, logged once; never a crash. */
  private refuse(req: IncomingMessage, socket: Socket, err: unknown): void {
    const status = err instanceof Refusal ? err.status : 500;
    const message = err instanceof Refusal ? err.message : 'internal error';
    const log = { event: 'ws_rejected', status, reason: message, url: redactUrl(req.url ?? '') };
    if (status === 500)
      this.upgradeLogger.error({ ...log, error: err instanceof Error ? err.message : String(err) });
    else this.upgradeLogger.warn(log);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(httpRejection(status, message), () => socket.destroy());
  }
}
