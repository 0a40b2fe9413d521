import { BeforeApplicationShutdown, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, OnGatewayDisconnect, WebSocketGateway } from '@nestjs/websockets';
import type { WebSocket } from 'ws';

import { ADMIN_ROLE, AuthenticatedRequest, Principal } from '../auth/principal';
import { TokenVerifier } from '../auth/token-verifier.service';
import { PluginViews } from '../plugins/plugin-views.service';
import type { PluginView } from '../plugins/plugin-view';
import type { LogLine } from '../plugins/process/log-ring-buffer';
import type { PluginName } from '../plugins/shared/plugin.types';

/** Where the console follows plugins live (docs/plugin-contract.md §3, "Live events"). */
export const EVENTS_PATH = '/api/events';

/** Close codes this endpoint sends (the plugin proxy's meaning, docs/plugin-contract.md §4). */
export const EVENTS_TOKEN_EXPIRED = 4401;
const GOING_AWAY = 1001;

/**
 * How often every client's views are compared with what it was sent: catches what no event
 * announces (a plugin that appeared or vanished in a rescan). Events make the usual case fast.
 */
const RECHECK_MS = 2_000;
/** A client that stopped reading gets no more log lines beyond this much unsent data. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** The longest delay setTimeout takes; a later expiry is re-checked then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Client {
  readonly user: Principal;
  readonly admin: boolean;
  /** The JSON of each plugin's view as last sent, to send only what changed. */
  readonly sent: Map<PluginName, string>;
  expiry?: NodeJS.Timeout;
  /** Log lines not sent because the client was not reading (told once it reads again). */
  dropped: number;
}

/** What the server sends: one JSON message per frame. */
export type EventMessage =
  | { type: 'hello'; user: { id: string; name: string; roles: readonly string[]; admin: boolean } }
  | { type: 'plugins'; plugins: PluginView[] }
  | { type: 'plugin'; plugin: PluginView }
  | { type: 'removed'; name: PluginName }
  | { type: 'log'; name: PluginName; at: string; stream: LogLine['stream']; line: string }
  | { type: 'logs-dropped'; count: number };

/**
 * `/api/events`: live plugin status and output for the console, as a Nest gateway on the
 * application's HTTP server (AuthenticatedWsAdapter authenticates before the 101 and leaves
 * `/plugin-ws/*` to the plugin proxy). Each client gets `hello` and a snapshot of the plugins it
 * may see, then a `plugin` message whenever one's view changed and `removed` when one is gone.
 * Output lines (`log`) go to admins only, as the log API; a client that stops reading loses
 * lines rather than growing the host's memory, and is told how many. The connection is closed
 * with 4401 when the token expires (the console reconnects with a fresh one) and 1001 at
 * shutdown. The gateway listens to no message from clients.
 */
@WebSocketGateway({ path: EVENTS_PATH, maxPayload: 4096 })
export class EventsGateway
  implements
    OnGatewayConnection<WebSocket>,
    OnGatewayDisconnect<WebSocket>,
    OnModuleInit,
    OnModuleDestroy,
    BeforeApplicationShutdown
{
  private readonly logger = new Logger(EventsGateway.name);
  private readonly clients = new Map<WebSocket, Client>();
  private readonly stops: (() => void)[] = [];
  private recheck: NodeJS.Timeout | undefined;
  private draining = false;

  public constructor(
    private readonly views: PluginViews,
    private readonly verifier: TokenVerifier,
  ) {}

  public onModuleInit(): void {
    this.stops.push(
      this.views.onChange((name) => this.pluginChanged(name)),
      this.views.onOutput((name, line) => this.output(name, line)),
      // Signed out on this replica: its consoles stop at once (4401), like its plugin sockets.
      this.verifier.onSessionEnd((sid) => {
        for (const [ws, client] of this.clients)
          if (client.user.sid === sid) ws.close(EVENTS_TOKEN_EXPIRED, 'signed out');
      }),
    );
  }

  public onModuleDestroy(): void {
    for (const stop of this.stops.splice(0)) stop();
    clearInterval(this.recheck);
    this.recheck = undefined;
  }

  /** Host shutdown: every console is told (1001) before the plugins stop. */
  public beforeApplicationShutdown(): void {
    this.draining = true;
    for (const ws of [...this.clients.keys()]) ws.close(GOING_AWAY, 'server shutting down');
  }

  public handleConnection(ws: WebSocket, req: AuthenticatedRequest): void {
    ws.on('error', () => undefined);
    const user = req.user;
    if (this.draining || user === undefined) {
      // No user can't happen (the adapter refuses before the 101); draining can.
      ws.close(GOING_AWAY, 'server shutting down');
      return;
    }
    const client: Client = {
      user,
      admin: user.roles.includes(ADMIN_ROLE),
      sent: new Map(),
      dropped: 0,
    };
    this.clients.set(ws, client);
    this.scheduleExpiry(ws, client);
    this.send(ws, {
      type: 'hello',
      user: { id: user.id, name: user.name, roles: user.roles, admin: client.admin },
    });
    const plugins = this.views.all(user);
    for (const view of plugins) client.sent.set(view.name, JSON.stringify(view));
    this.send(ws, { type: 'plugins', plugins });
    this.recheck ??= setInterval(() => this.recheckAll(), RECHECK_MS);
    this.recheck.unref();
    this.logger.debug({ event: 'events_connected', user: user.id, clients: this.clients.size });
  }

  public handleDisconnect(ws: WebSocket): void {
    const client = this.clients.get(ws);
    if (client === undefined) return;
    clearTimeout(client.expiry);
    this.clients.delete(ws);
    if (this.clients.size === 0) {
      clearInterval(this.recheck);
      this.recheck = undefined;
    }
  }

  private scheduleExpiry(ws: WebSocket, client: Client): void {
    if (client.user.exp === undefined) return;
    const left = client.user.exp * 1000 - Date.now();
    client.expiry = setTimeout(
      () => {
        if (client.user.exp !== undefined && client.user.exp * 1000 > Date.now())
          this.scheduleExpiry(ws, client);
        else ws.close(EVENTS_TOKEN_EXPIRED, 'token expired');
      },
      Math.min(Math.max(left, 0), MAX_TIMER_MS),
    );
    client.expiry.unref();
  }

  private pluginChanged(name: PluginName): void {
    for (const [ws, client] of this.clients) this.sendView(ws, client, name);
  }

  /** Whatever changed for any client since it was last sent: new, changed and vanished plugins. */
  private recheckAll(): void {
    for (const [ws, client] of this.clients) {
      const current = new Set<PluginName>();
      for (const view of this.views.all(client.user)) {
        current.add(view.name);
        this.sendIfChanged(ws, client, view);
      }
      for (const name of [...client.sent.keys()])
        if (!current.has(name)) {
          client.sent.delete(name);
          this.send(ws, { type: 'removed', name });
        }
    }
  }

  private sendView(ws: WebSocket, client: Client, name: PluginName): void {
    const view = this.views.find(name, client.user);
    if (view !== undefined) this.sendIfChanged(ws, client, view);
    else if (client.sent.delete(name)) this.send(ws, { type: 'removed', name });
  }

  private sendIfChanged(ws: WebSocket, client: Client, view: PluginView): void {
    const json = JSON.stringify(view);
    if (client.sent.get(view.name) === json) return;
    client.sent.set(view.name, json);
    this.send(ws, { type: 'plugin', plugin: view });
  }

  private output(name: PluginName, line: LogLine): void {
    for (const [ws, client] of this.clients) {
      if (!client.admin) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        client.dropped += 1;
        continue;
      }
      if (client.dropped > 0) {
        this.send(ws, { type: 'logs-dropped', count: client.dropped });
        client.dropped = 0;
      }
      this.send(ws, {
        type: 'log',
        name,
        at: new Date(line.time).toISOString(),
        stream: line.stream,
        line: line.line,
      });
    }
  }

  private send(ws: WebSocket, message: EventMessage): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }
}
