import type { Socket } from 'node:net';

import type { Principal } from '../../auth/principal';
import { FeedResult, FrameTracker, FrameTrackerOptions, FrameViolation } from './frame-tracker';
import { CloseCode, closeFrame, controlFrame, Opcode } from './ws-frame';

/** How long a closing side may take to flush before its socket is destroyed. */
const CLOSE_FLUSH_MS = 1000;
const PING_PAYLOAD = Buffer.from('portico');
/** Bytes queued in a destination socket beyond which its source is paused until 'drain'. */
const PAUSE_AT_BYTES = 1024 * 1024;
/** Longest delay setTimeout takes; a session further away is re-armed when this one fires. */
const MAX_TIMER_MS = 2_147_483_647;
/**
 * Session ends are first waited for in whole multiples of this, then for the rest: Node keeps one
 * timer list per distinct delay, and with a delay to the millisecond every connection made its
 * own for its whole life (4 µs each instead of under 1, and a list object per connection). The
 * last part, under a second, is armed only then, so the end stays exact.
 */
const SESSION_END_STEP_MS = 1000;
/**
 * Socket reads at least this large give their memory back as soon as their bytes are written
 * (`releaseWhenWritten`); smaller ones hold too little to matter and skip the write callback.
 */
const RELEASE_AT_BYTES = 16 * 1024;

/** `ArrayBuffer.prototype.transfer` (ES2024): Node 22 and later have it, Node 20 does not. */
type Transferable = ArrayBuffer & { transfer?: (newLength?: number) => ArrayBuffer };

/**
 * The ArrayBuffer behind `chunk`, a buffer straight from a socket read, when the relay may free
 * it once `chunk` is written: Node allocates a fresh ArrayBuffer for every read and hands it to
 * 'data' listeners only (the relay's), so the relay is its only user. Node 24 sometimes leaves a
 * read's spare capacity at the end of it; a chunk not at the start of its buffer (never seen) or
 * small enough to be a slice of Buffer's 8 KiB pool is left to the collector.
 */
function releasable(chunk: Buffer): Transferable | undefined {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer) || chunk.length < RELEASE_AT_BYTES) return undefined;
  return chunk.byteOffset === 0 ? buffer : undefined;
}

/**
 * Frees a socket read's memory now instead of at the next garbage collection that reaches it:
 * `transfer(0)` detaches the buffer, which drops its backing store. Node 24's V8 collects dead
 * read buffers only by full collections, once ~64 MiB of them have piled up; without this the
 * host's RSS grew by up to 80 MiB while relaying 1 GiB to a slow peer (docs/relay-profile.md,
 * "Node lines: host memory while relaying 1 GiB"). Called from the write callback: the kernel
 * has the bytes (or the socket is gone) and nothing refers to the buffer any more.
 */
function releaseWhenWritten(buffer: Transferable): () => void {
  return () => {
    try {
      buffer.transfer?.(0);
    } catch {
      // Not detachable after all (a buffer marked untransferable): the collector frees it.
    }
  };
}

/** The close reason a client (and the plugin) is given for each refused frame. */
const VIOLATION_REASON: Readonly<Record<FrameViolation, string>> = {
  'too-big': 'message too big',
  'bad-length': 'invalid frame length',
  unmasked: 'client frame not masked',
  'reserved-bits': 'reserved bits set without an extension',
  'unknown-opcode': 'unknown opcode',
  'bad-control-frame': 'invalid control frame',
  'bad-fragmentation': 'invalid fragmentation',
  'bad-close': 'invalid close frame',
};

export interface RelayOptions {
  readonly plugin: string;
  /** The plugin process generation this connection was made to. */
  readonly generation: number;
  /** Whose session this is (access checks while it lasts). */
  readonly user: Principal;
  /** Largest message either way (the plugin's `maxMessageBytes`). */
  readonly maxMessageBytes: number;
}

/** Relays with corked sockets, flushed together once per event-loop turn. */
const corked = new Set<WsRelay>();
let flushScheduled = false;

function flushCorked(): void {
  flushScheduled = false;
  const relays = [...corked];
  corked.clear();
  for (const relay of relays) relay.flushWrites();
}

/**
 * Ends a socket's writing side unless that already happened: `end()` on an ended socket builds
 * an error with a stack trace (ERR_STREAM_ALREADY_FINISHED) only to ignore it, which was a
 * measurable part of every connection's teardown.
 */
function endOnce(socket: Socket): void {
  if (!socket.writableEnded && !socket.destroyed) socket.end();
}

export interface RelayHooks {
  /** The plugin's side went away without a close frame; answer with `closeClient`. */
  upstreamLost(relay: WsRelay): void;
  /** Both sockets are closed; the relay holds nothing any more. */
  closed(relay: WsRelay): void;
  /** Portico itself ended the session (a bad frame, a message too big, an expired token). */
  ended(relay: WsRelay, code: number, reason: string): void;
}

/**
 * One direction of a relay: bytes from `source` to `dest`, the frame tracker that follows
 * their boundaries, and everything known about `dest` as a destination (a close frame waiting
 * for a boundary, whether writing to it ended, whether it closed, its corking this turn).
 * Each socket is the destination of exactly one direction, so this is all per-socket state.
 */
class Direction {
  public readonly tracker: FrameTracker;
  /** A header byte held back until the byte after it shows the frame is allowed (client only). */
  private held: Buffer | undefined;
  /** A close frame waiting for a frame boundary before it goes to `dest`. */
  public pendingClose: Buffer | undefined;
  /** Portico's close frame for `dest`, sent in place of `source`'s own (`closeInPlaceOfSource`). */
  private closeInPlace: Buffer | undefined;
  /** Nothing more is written to `dest` (its close frame left, or it was cut). */
  public done = false;
  /** A close frame went to `dest` (it may still be flushing). */
  public closeSent = false;
  /** `dest` emitted 'close'. */
  public destClosed = false;
  /** Written to in this event-loop turn: later writes in the same turn are corked. */
  private touched = false;
  private corked = false;

  public constructor(
    public readonly source: Socket,
    public readonly dest: Socket,
    trackerOptions: FrameTrackerOptions,
    /** Frames Portico writes towards a server (the plugin) must be masked. */
    private readonly masked: boolean,
    private readonly relay: WsRelay,
  ) {
    this.tracker = new FrameTracker(trackerOptions);
  }

  /** Writing to `dest` is over, one way or another. */
  public get finished(): boolean {
    return this.done || this.destClosed;
  }

  /**
   * Forwards what of `data` may go to `dest` and returns the tracker's verdict; on `cut`, the
   * caller decides what happens to the rest (`result.at` bytes of `chunk` may still go out).
   */
  public forward(data: Buffer, fromRead = false): { chunk: Buffer; result: FeedResult } {
    let chunk = data;
    if (this.held !== undefined) {
      chunk = Buffer.concat([this.held, data]);
      this.held = undefined;
    }
    const result = this.tracker.feed(chunk);
    if (result.kind === 'cut') return { chunk, result };
    if (result.kind === 'close') {
      // `source` answered Portico's close: what came before it goes on, then Portico's close.
      if (result.at > 0) this.write(chunk.subarray(0, result.at));
      this.sendCloseInPlace();
      return { chunk, result };
    }
    let out = chunk;
    if (result.kind === 'hold') {
      this.held = Buffer.from(chunk.subarray(chunk.length - result.bytes));
      out = chunk.subarray(0, chunk.length - result.bytes);
      if (out.length === 0) return { chunk, result };
    }
    // Only a chunk straight from a read is the relay's alone (the heads are slices of other data).
    this.write(out, fromRead && chunk === data ? releasable(chunk) : undefined);
    this.flushClose();
    return { chunk, result };
  }

  /**
   * The turn's first write goes out at once (no added latency); later ones are corked and leave
   * together in one writev when the relay flushes at the end of the turn. `release` is the read
   * buffer `chunk` lies in, freed once `dest` has written it.
   */
  public write(chunk: Buffer, release?: Transferable): void {
    if (!this.touched) {
      this.touched = true;
      this.relay.scheduleFlush();
    } else if (!this.corked) {
      this.corked = true;
      this.dest.cork();
    }
    if (release === undefined || release.transfer === undefined) this.dest.write(chunk);
    else this.dest.write(chunk, releaseWhenWritten(release));
  }

  /** Queues a close frame for `dest`; it leaves at the next frame boundary. */
  public sendClose(code: number, reason: string): void {
    this.pendingClose = closeFrame(code, reason, this.masked);
    this.flushClose();
  }

  /**
   * `dest` gets this close when `source` sends its own close frame (which is not forwarded), or
   * when `sendCloseInPlace` is called; until then `source`'s frames keep flowing to `dest`.
   */
  public closeInPlaceOfSource(code: number, reason: string): void {
    this.closeInPlace = closeFrame(code, reason, this.masked);
    this.tracker.stopAtClose = true;
  }

  /**
   * Sends the close kept by `closeInPlaceOfSource` now, if it can go (at a frame boundary);
   * returns whether it went.
   */
  public sendCloseInPlace(): boolean {
    const frame = this.closeInPlace;
    if (frame === undefined) return false;
    this.closeInPlace = undefined;
    if (this.finished) return false;
    this.pendingClose = frame;
    this.flushClose();
    return this.closeSent;
  }

  public flushClose(): void {
    const frame = this.pendingClose;
    if (frame === undefined || !this.tracker.atBoundary) return;
    this.pendingClose = undefined;
    this.done = true;
    this.closeSent = true;
    this.dest.end(frame);
  }

  /** End of the turn: uncork `dest`, and pause `source` if `dest` has too much queued. */
  public flushWrites(): void {
    this.touched = false;
    if (this.corked) {
      this.corked = false;
      this.dest.uncork();
    }
    if (this.dest.writableLength > PAUSE_AT_BYTES) this.source.pause();
  }
}

/**
 * Splices an accepted client WebSocket to its plugin's WebSocket byte for byte, after both
 * handshakes are done. Frame headers are followed in both directions (never payloads), which is
 * enough to inject close and ping frames between frames, to enforce the message size limit, and
 * to tell a clean close from a vanished peer. Backpressure is the sockets' own: a side whose
 * destination is full is paused until it drains. What it does and why, with measurements:
 * docs/relay-profile.md.
 */
export class WsRelay {
  public readonly plugin: string;
  public readonly generation: number;
  public readonly user: Principal;
  private readonly toUpstream: Direction;
  private readonly toClient: Direction;
  private sessionTimer: NodeJS.Timeout | undefined;
  private clientHeard = true;
  private pingOutstanding = false;
  private missedPongs = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushQueued = false;

  public constructor(
    options: RelayOptions,
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly hooks: RelayHooks,
  ) {
    this.plugin = options.plugin;
    this.generation = options.generation;
    this.user = options.user;
    const { maxMessageBytes } = options;
    this.toUpstream = new Direction(
      client,
      upstream,
      { maxMessageBytes, fromClient: true },
      true,
      this,
    );
    this.toClient = new Direction(upstream, client, { maxMessageBytes }, false, this);
  }

  /** Starts relaying; `clientHead`/`upstreamHead` are bytes each side sent after its handshake. */
  public start(clientHead: Buffer, upstreamHead: Buffer): void {
    const { client, upstream } = this;
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // The listeners are shared functions that find the relay on the socket, not closures: ten
    // fewer objects per connection, which an idle connection would hold for its whole life.
    (client as RelaySocket)[RELAY] = this;
    (upstream as RelaySocket)[RELAY] = this;
    client.on('data', WsRelay.onClientData);
    upstream.on('data', WsRelay.onUpstreamData);
    client.on('drain', WsRelay.onDrain);
    upstream.on('drain', WsRelay.onDrain);
    client.on('end', WsRelay.onClientEnd);
    upstream.on('end', WsRelay.onUpstreamEnd);
    client.on('error', ignore);
    upstream.on('error', ignore);
    client.on('close', WsRelay.onClientClose);
    upstream.on('close', WsRelay.onUpstreamClose);
    if (upstreamHead.length > 0) this.fromUpstream(upstreamHead);
    if (clientHead.length > 0) this.fromClient(clientHead);
  }

  private static onClientData(this: Socket, chunk: Buffer): void {
    relayOf(this).fromClient(chunk, true);
  }

  private static onUpstreamData(this: Socket, chunk: Buffer): void {
    relayOf(this).fromUpstream(chunk, true);
  }

  /** A destination drained: its source may read again. */
  private static onDrain(this: Socket): void {
    const relay = relayOf(this);
    (this === relay.client ? relay.upstream : relay.client).resume();
  }

  private static onClientEnd(this: Socket): void {
    relayOf(this).onClientEnd();
  }

  private static onUpstreamEnd(this: Socket): void {
    relayOf(this).onUpstreamEnd();
  }

  private static onClientClose(this: Socket): void {
    relayOf(this).onClientClose();
  }

  private static onUpstreamClose(this: Socket): void {
    relayOf(this).onUpstreamClose();
  }

  /** Sends the client a close frame (at the next frame boundary) and ends its socket. */
  public closeClient(code: number, reason: string): void {
    if (this.toClient.finished) return;
    this.toClient.sendClose(code, reason);
    // The plugin is gone in the middle of a frame: that frame can't be finished without
    // delivering made-up bytes, so the client's connection is reset instead (it sees 1006).
    if (this.toClient.pendingClose !== undefined && this.toUpstream.destClosed)
      this.client.destroy();
    else this.armFlushTimer();
  }

  /**
   * Ends the session `delayMs` from now with `code` (4401 when the token expires). Called once,
   * right after `start`; the timer goes with the relay.
   */
  public endAfter(delayMs: number, code: number, reason: string): void {
    if (this.sessionTimer !== undefined) clearTimeout(this.sessionTimer);
    const coarse =
      delayMs >= SESSION_END_STEP_MS
        ? Math.floor(delayMs / SESSION_END_STEP_MS) * SESSION_END_STEP_MS
        : delayMs;
    const wait = Math.max(0, Math.min(coarse, MAX_TIMER_MS));
    this.sessionTimer = setTimeout(() => {
      this.sessionTimer = undefined;
      if (wait < delayMs) this.endAfter(delayMs - wait, code, reason);
      else {
        this.hooks.ended(this, code, reason);
        this.closeClientFirst(code, reason);
      }
    }, wait);
  }

  /**
   * Closes both sides at once with the same code (access revoked, signed out, plugin stopping):
   * whatever the client sends after this moment is dropped.
   */
  public closeBoth(code: number, reason: string): void {
    this.closeClient(code, reason);
    this.closeUpstream(code, reason);
  }

  /**
   * Ends a session both sides of which are sound (its token expired, the host shuts down): the
   * client is sent the close first, and what it sent before it heard it still reaches the plugin,
   * in order — a browser types on until the close frame arrives. The client's answering close
   * frame marks the end of that; the plugin then gets this close (`code`, `reason`) in its
   * place. A client that does not answer within CLOSE_FLUSH_MS is cut off, and the plugin gets
   * the close then.
   */
  public closeClientFirst(code: number, reason: string): void {
    if (this.toClient.finished || this.toUpstream.finished || this.toUpstream.tracker.closeSeen) {
      this.closeBoth(code, reason);
      return;
    }
    this.toUpstream.closeInPlaceOfSource(code, reason);
    this.closeClient(code, reason);
  }

  /** Keepalive, called on a shared interval: ping an idle client, drop one that stopped answering. */
  public tick(): void {
    if (this.toClient.finished) return;
    if (this.clientHeard) {
      this.clientHeard = false;
      this.pingOutstanding = false;
      this.missedPongs = 0;
      return;
    }
    if (this.pingOutstanding) {
      this.missedPongs += 1;
      if (this.missedPongs >= 2) {
        this.closeUpstream(CloseCode.GoingAway, 'client stopped answering pings');
        this.client.destroy();
        return;
      }
    }
    if (this.toClient.tracker.atBoundary && this.toClient.pendingClose === undefined) {
      this.client.write(controlFrame(Opcode.Ping, PING_PAYLOAD, false));
      this.pingOutstanding = true;
    }
  }

  /** Queues this relay's end-of-turn flush (see `Direction.write`). */
  public scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    corked.add(this);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(flushCorked);
  }

  /**
   * End of an event-loop turn in which this relay wrote: uncorks both destinations, so whatever
   * was relayed after the turn's first write leaves in one writev (the relay is bound by write
   * system calls), and pauses a source whose destination has too much queued.
   */
  public flushWrites(): void {
    this.flushQueued = false;
    this.toClient.flushWrites();
    this.toUpstream.flushWrites();
  }

  public get isClosed(): boolean {
    return this.toClient.destClosed && this.toUpstream.destClosed;
  }

  private closeUpstream(code: number, reason: string): void {
    if (this.toUpstream.finished) return;
    this.toUpstream.sendClose(code, reason);
    this.armFlushTimer();
  }

  /** `fromRead`: `data` is a buffer straight from a socket read (not a handshake's leftover). */
  private fromClient(data: Buffer, fromRead = false): void {
    this.clientHeard = true;
    if (this.toUpstream.finished) return;
    const { chunk, result } = this.toUpstream.forward(data, fromRead);
    if (result.kind === 'cut') this.onClientViolation(chunk, result);
  }

  private fromUpstream(data: Buffer, fromRead = false): void {
    if (this.toClient.done) return;
    const { chunk, result } = this.toClient.forward(data, fromRead);
    if (result.kind === 'cut') this.onUpstreamViolation(chunk, result);
  }

  /** A client frame broke a rule or the size limit: none of it reaches the plugin. */
  private onClientViolation(chunk: Buffer, result: Extract<FeedResult, { kind: 'cut' }>): void {
    if (result.at > 0) this.upstream.write(chunk.subarray(0, result.at));
    const code = violationCode(result.violation);
    const reason = VIOLATION_REASON[result.violation];
    this.hooks.ended(this, code, reason);
    // The offending frame was not forwarded, so the plugin's stream ends on a frame boundary.
    if (result.clean) this.closeUpstream(code, reason);
    this.toUpstream.done = true;
    if (this.toUpstream.pendingClose === undefined) this.upstream.destroy();
    this.client.pause();
    this.closeClient(code, reason);
  }

  /** The plugin sent a message over the limit (docs/plugin-contract.md §4 "to or from"): both sides close. */
  private onUpstreamViolation(chunk: Buffer, result: Extract<FeedResult, { kind: 'cut' }>): void {
    if (result.at > 0) this.client.write(chunk.subarray(0, result.at));
    const code = violationCode(result.violation);
    const reason = VIOLATION_REASON[result.violation];
    this.hooks.ended(this, code, `plugin: ${reason}`);
    this.upstream.pause();
    this.closeUpstream(code, reason);
    if (result.clean) this.closeClient(code, reason);
    else {
      // Part of the frame already reached the client: no close frame can follow it.
      this.toClient.done = true;
      this.client.destroy();
    }
  }

  /** The client finished sending: after its close frame that is the normal end, else it vanished. */
  private onClientEnd(): void {
    if (this.toUpstream.tracker.closeSeen) {
      endOnce(this.upstream);
      return;
    }
    // Answered Portico's close by hanging up: the plugin still gets that close, as if answered.
    if (this.toUpstream.sendCloseInPlace()) return;
    this.upstream.destroy();
    this.client.destroy();
  }

  /** Plugin sockets do not stay half-open: an end without a close frame is reported on 'close'. */
  private onUpstreamEnd(): void {
    if (this.toClient.tracker.closeSeen && !this.toClient.done) endOnce(this.client);
  }

  private onClientClose(): void {
    this.toClient.destClosed = true;
    // A client that vanished without a close frame is reported to the plugin as 1006.
    if (!this.toUpstream.destClosed) {
      const { tracker, pendingClose, closeSent } = this.toUpstream;
      if (tracker.closeSeen || pendingClose !== undefined || closeSent) this.armFlushTimer();
      else this.upstream.destroy();
    }
    this.maybeClosed();
  }

  private onUpstreamClose(): void {
    this.toUpstream.destClosed = true;
    if (!this.toClient.destClosed) {
      if (this.toClient.tracker.closeSeen) {
        if (!this.toClient.done) endOnce(this.client);
        this.armFlushTimer();
      } else if (this.toClient.pendingClose === undefined && !this.toClient.done) {
        this.hooks.upstreamLost(this);
      }
    }
    this.maybeClosed();
  }

  /** Whatever is still open after a close has had its chance to flush gets destroyed. */
  private armFlushTimer(): void {
    if (this.flushTimer !== undefined) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      // The client never answered a `closeClientFirst`: the plugin gets its close now, and
      // another moment to flush it.
      const upstreamClosing = this.toUpstream.sendCloseInPlace();
      this.client.destroy();
      if (upstreamClosing) this.armFlushTimer();
      else this.upstream.destroy();
    }, CLOSE_FLUSH_MS);
  }

  private maybeClosed(): void {
    if (!this.isClosed) return;
    corked.delete(this);
    this.flushQueued = false;
    if (this.sessionTimer !== undefined) clearTimeout(this.sessionTimer);
    this.sessionTimer = undefined;
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.hooks.closed(this);
  }
}

/** Where a relayed socket keeps its relay, for the shared listeners. */
const RELAY = Symbol('relay');
type RelaySocket = Socket & { [RELAY]?: WsRelay };

function relayOf(socket: Socket): WsRelay {
  const relay = (socket as RelaySocket)[RELAY];
  if (relay === undefined) throw new Error('socket is not relayed');
  return relay;
}

function ignore(): void {
  // Socket errors end in 'close', which the relay handles.
}

function violationCode(violation: FrameViolation): number {
  return violation === 'too-big' ? CloseCode.MessageTooBig : CloseCode.ProtocolError;
}
