import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

import { clientKey } from './client-address';

export interface HeaderPhaseCapOptions {
  /** Most connections one client may have before its first request head is read; ≥ 1. */
  readonly maxPerClient: number;
  /** Addresses the cap does not apply to (a reverse proxy in front, say). */
  readonly exempt: (address: string) => boolean;
  /** Refusals are logged at most twice per client per window: the first, then a count. */
  readonly logWindowMs: number;
  readonly log: (line: HeaderPhaseCapLogLine) => void;
}

/** One structured log line about refused connections. */
export interface HeaderPhaseCapLogLine {
  readonly event: 'connections_refused';
  readonly reason: 'header_phase_cap';
  /** The client as counted: an IPv4 address or an IPv6 /64. */
  readonly client: string;
  readonly cap: number;
  /** Connections refused since the previous line about this client. */
  readonly refused: number;
}

/**
 * Caps the connections each client address may hold open before sending its first request head,
 * the phase a slowloris attack stays in (HTTP_HEADERS_TIMEOUT_MS bounds how long; this bounds how
 * many). A connection counts from `connection` until its first `request` or `upgrade` head is
 * parsed, or it closes; later requests on a kept-alive connection are not counted again (an idle
 * one is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS, a slow one after the headers timeout). A new
 * connection from a client already at the cap is destroyed at once, before any byte is read.
 * Clients are counted by clientKey (IPv6 by /64).
 */
export class HeaderPhaseCap {
  private readonly open = new Map<string, number>();
  private readonly counted = new WeakMap<Socket, string>();
  /** Per client refused in the current log window: refusals not yet logged. */
  private readonly unlogged = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private refusedTotal = 0;

  public constructor(private readonly options: HeaderPhaseCapOptions) {}

  /** Connections currently counted, over every client. */
  public get inHeaderPhase(): number {
    let sum = 0;
    for (const n of this.open.values()) sum += n;
    return sum;
  }

  /** Connections refused since attach. */
  public get refused(): number {
    return this.refusedTotal;
  }

  public attach(server: Server): void {
    server.on('connection', this.onConnection);
    server.on('request', this.onRequest);
    // Node answers an upgrade request as a plain request when nobody listens for `upgrade`;
    // so listen only while someone else does (the WebSocket gateway), never changing that.
    server.on('newListener', (event: string | symbol, listener: unknown) => {
      if (event === 'upgrade' && listener !== this.onUpgrade && !this.listensToUpgrade(server))
        server.prependListener('upgrade', this.onUpgrade);
    });
    server.on('removeListener', (event: string | symbol, listener: unknown) => {
      if (event !== 'upgrade' || listener === this.onUpgrade) return;
      const others = server.listeners('upgrade').filter((l) => l !== this.onUpgrade);
      if (others.length === 0) server.off('upgrade', this.onUpgrade);
    });
    if (server.listenerCount('upgrade') > 0) server.prependListener('upgrade', this.onUpgrade);
    server.once('close', () => this.flush());
  }

  private readonly onConnection = (socket: Socket): void => {
    const address = socket.remoteAddress;
    const client = clientKey(address);
    if (address === undefined || client === undefined || this.options.exempt(address)) return;
    const open = this.open.get(client) ?? 0;
    if (open >= this.options.maxPerClient) {
      socket.destroy();
      this.refuse(client);
      return;
    }
    this.open.set(client, open + 1);
    this.counted.set(socket, client);
    socket.once('close', () => this.release(socket));
  };

  private readonly onRequest = (req: IncomingMessage): void => this.release(req.socket);

  private readonly onUpgrade = (req: IncomingMessage): void => this.release(req.socket);

  private listensToUpgrade(server: Server): boolean {
    return server.listeners('upgrade').includes(this.onUpgrade);
  }

  private release(socket: Socket): void {
    const client = this.counted.get(socket);
    if (client === undefined) return;
    this.counted.delete(socket);
    const open = (this.open.get(client) ?? 1) - 1;
    if (open > 0) this.open.set(client, open);
    else this.open.delete(client);
  }

  private refuse(client: string): void {
    this.refusedTotal++;
    const pending = this.unlogged.get(client);
    if (pending !== undefined) {
      this.unlogged.set(client, pending + 1);
      return;
    }
    // The first refusal of a window is logged at once; the rest as one count when it ends.
    this.unlogged.set(client, 0);
    this.logLine(client, 1);
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => this.flush(), this.options.logWindowMs);
      this.flushTimer.unref();
    }
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const [client, refused] of this.unlogged) if (refused > 0) this.logLine(client, refused);
    this.unlogged.clear();
  }

  private logLine(client: string, refused: number): void {
    this.options.log({
      event: 'connections_refused',
      reason: 'header_phase_cap',
      client,
      cap: this.options.maxPerClient,
      refused,
    });
  }
}
