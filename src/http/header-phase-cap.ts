import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

import { clientKey } from './client-address';

export interface HeaderPhaseCapOptions {
  /**
   * Most connections one client may hold in the header phase for longer than `graceMs`; ≥ 1.
   * A connection over it is closed once its grace ends without a request head.
   */
  readonly maxPerClient: number;
  /**
   * How long a new connection may take to send its request head before it counts against
   * `maxPerClient`. A reconnect storm through one address (a NAT) queues thousands of
   * connections that Portico accepts at once, before it has read any of their heads (which
   * are already in the kernel's buffers): they are not refused for that.
   */
  readonly graceMs: number;
  /** Most connections one client may have in the header phase at all; more are closed at once. */
  readonly maxBurstPerClient: number;
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
 * many). A connection is in its header phase from `connection` until its first `request` or
 * `upgrade` head is parsed, or it closes; later requests on a kept-alive connection are not
 * counted again (an idle one is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS, a slow one after the
 * headers timeout). A connection still in its header phase after `graceMs` counts against
 * `maxPerClient`: over it, it is destroyed then, having sent no complete head. A client with
 * `maxBurstPerClient` connections in the header phase has new ones destroyed at once, before any
 * byte is read. So a silent client holds at most `maxPerClient` connections for long and
 * `maxBurstPerClient` for a moment, while a storm of real clients behind one address, whose heads
 * arrive with their connections, is served. Clients are counted by clientKey (IPv6 by /64).
 */
export class HeaderPhaseCap {
  /** Per client: connections past their grace, still without a head. */
  private readonly open = new Map<string, number>();
  /** Per client: every connection in its header phase, within its grace or past it. */
  private readonly pending = new Map<string, number>();
  private readonly tracked = new WeakMap<Socket, Tracked>();
  /** Per client refused in the current log window: refusals not yet logged. */
  private readonly unlogged = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private refusedTotal = 0;

  public constructor(private readonly options: HeaderPhaseCapOptions) {}

  /** Connections in their header phase now (within their grace or past it), over every client. */
  public get inHeaderPhase(): number {
    let sum = 0;
    for (const n of this.pending.values()) sum += n;
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
    const pending = this.pending.get(client) ?? 0;
    if (pending >= this.options.maxBurstPerClient) {
      socket.destroy();
      this.refuse(client);
      return;
    }
    this.pending.set(client, pending + 1);
    const entry: Tracked = { client, counted: false, timer: undefined };
    entry.timer = setTimeout(() => this.graceOver(socket, entry), this.options.graceMs);
    entry.timer.unref();
    this.tracked.set(socket, entry);
    socket.once('close', () => this.release(socket));
  };

  /** Still no head after its grace: it counts now, or is closed if its client is at the cap. */
  private graceOver(socket: Socket, entry: Tracked): void {
    entry.timer = undefined;
    if (this.tracked.get(socket) !== entry) return;
    const open = this.open.get(entry.client) ?? 0;
    if (open >= this.options.maxPerClient) {
      this.release(socket);
      socket.destroy();
      this.refuse(entry.client);
      return;
    }
    entry.counted = true;
    this.open.set(entry.client, open + 1);
  }

  private readonly onRequest = (req: IncomingMessage): void => this.release(req.socket);

  private readonly onUpgrade = (req: IncomingMessage): void => this.release(req.socket);

  private listensToUpgrade(server: Server): boolean {
    return server.listeners('upgrade').includes(this.onUpgrade);
  }

  private release(socket: Socket): void {
    const entry = this.tracked.get(socket);
    if (entry === undefined) return;
    this.tracked.delete(socket);
    clearTimeout(entry.timer);
    decrement(this.pending, entry.client);
    if (entry.counted) decrement(this.open, entry.client);
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

/** A connection in its header phase. */
interface Tracked {
  readonly client: string;
  /** Past its grace and counted against the cap. */
  counted: boolean;
  /** Ends the grace; undefined once it has. */
  timer: NodeJS.Timeout | undefined;
}

function decrement(counts: Map<string, number>, client: string): void {
  const n = (counts.get(client) ?? 1) - 1;
  if (n > 0) counts.set(client, n);
  else counts.delete(client);
}
