import { isUtf8 } from 'node:buffer';

import { MAX_HEADER_BYTES, Opcode } from './ws-frame';

export type FeedResult =
  /** Forward the whole chunk. */
  | { readonly kind: 'pass' }
  /**
   * Forward all but the chunk's last `bytes`: they begin a frame header that can't be checked
   * yet. The caller feeds them again in front of the next chunk (only in `fromClient` mode).
   */
  | { readonly kind: 'hold'; readonly bytes: number }
  /**
   * Forward `chunk.subarray(0, at)`, then stop: the next frame breaks a rule. `clean` is false
   * when part of that frame's header already left in an earlier chunk.
   */
  | {
      readonly kind: 'cut';
      readonly at: number;
      readonly clean: boolean;
      readonly violation: FrameViolation;
    }
  /**
   * Forward `chunk.subarray(0, at)`, then stop: a (valid) close frame starts at `at` and
   * `stopAtClose` is set, so the caller answers it instead of forwarding it.
   */
  | { readonly kind: 'close'; readonly at: number };

/** Why a frame was refused; every one but `too-big` is a protocol error (close code 1002). */
export type FrameViolation =
  | 'too-big'
  | 'bad-length'
  | 'unmasked'
  | 'reserved-bits'
  | 'unknown-opcode'
  | 'bad-control-frame'
  | 'bad-fragmentation'
  | 'bad-close';

export interface FrameTrackerOptions {
  /** Largest data message (all its fragments) allowed; larger ones are cut (1009). */
  readonly maxMessageBytes?: number;
  /**
   * Frames come from a client (RFC 6455 §5.1–§5.5): each must be masked, carry no RSV bits (no
   * extension is ever negotiated through Portico), use a known opcode, keep control frames
   * unfragmented and ≤ 125 bytes, and fragment messages in order. All of it is in a frame's
   * first two bytes, so it costs nothing; a frame that breaks a rule is cut before any of it
   * is forwarded. Close frames (rare, ≤ 131 bytes) are also held until whole and their code and
   * reason checked (§5.5.1, §7.4), since many plugin servers fail on a bad one.
   */
  readonly fromClient?: boolean;
}

const PASS: FeedResult = { kind: 'pass' };
const HOLD_ONE: FeedResult = { kind: 'hold', bytes: 1 };

/**
 * Follows WebSocket frame boundaries in one direction of a byte stream without copying or
 * unmasking payloads: it reads each header (2–14 bytes) as it passes and skips the payload.
 * That is all the relay needs to inject control frames between frames, to enforce the
 * message size limit and the client frame rules, and to know whether a peer sent a close frame.
 */
export class FrameTracker {
  private readonly maxMessageBytes: number;
  private readonly fromClient: boolean;
  /** Payload bytes of the current frame still to pass. */
  private remaining = 0;
  /**
   * A header split across chunks is gathered here; allocated the first time that happens (rare:
   * most connections never need it, and an idle connection should hold as little as possible).
   */
  private partialBuffer: Buffer | undefined;
  private partialLength = 0;
  /** Payload bytes of the current (possibly fragmented) data message so far. */
  private messageBytes = 0;
  /** A data message's first frame has passed without FIN: continuations are due. */
  private inMessage = false;
  private closeSeenFlag = false;
  private framesSeen = 0;
  /**
   * A client's close frame is not passed on but reported (`kind: 'close'`): the relay sends its
   * own close in its place (WsRelay.closeClientFirst). Only for `fromClient` trackers, which
   * hold close frames whole.
   */
  public stopAtClose = false;

  public constructor(options: FrameTrackerOptions = {}) {
    this.maxMessageBytes = options.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    this.fromClient = options.fromClient === true;
  }

  /** True between frames: a control frame may be written to this direction's destination now. */
  public get atBoundary(): boolean {
    return this.remaining === 0 && this.partialLength === 0;
  }

  /** A close frame has started to pass in this direction. */
  public get closeSeen(): boolean {
    return this.closeSeenFlag;
  }

  public get frames(): number {
    return this.framesSeen;
  }

  public feed(chunk: Buffer): FeedResult {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, len - pos);
        this.remaining -= take;
        pos += take;
        continue;
      }
      const frameStart = pos - this.partialLength;
      let header: Buffer;
      let offset: number;
      if (this.partialLength === 0) {
        header = chunk;
        offset = pos;
      } else {
        const copy = Math.min(MAX_HEADER_BYTES - this.partialLength, len - pos);
        header = this.partial;
        chunk.copy(header, this.partialLength, pos, pos + copy);
        offset = 0;
      }
      const available = this.partialLength === 0 ? len - pos : this.partialLength + (len - pos);
      if (available < 2) {
        // One byte can't be checked: a client's is held back so a bad frame never starts to leave.
        if (this.fromClient) return HOLD_ONE;
        chunk.copy(this.partial, 0, pos, len);
        this.partialLength = len - pos;
        return PASS;
      }
      const b0 = header[offset] as number;
      const b1 = header[offset + 1] as number;
      if (this.fromClient) {
        const violation = this.clientFrameViolation(b0, b1);
        if (violation !== undefined) return this.cut(frameStart, violation);
      }
      const len7 = b1 & 0x7f;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
      const opcode = b0 & 0x0f;
      if (this.fromClient && opcode === Opcode.Close && this.partialLength === 0) {
        // Held whole, so that a bad close frame never starts to reach the plugin.
        if (available < need + len7) return { kind: 'hold', bytes: len - pos };
        if (!validClosePayload(chunk, pos + 2, len7)) return this.cut(frameStart, 'bad-close');
        if (this.stopAtClose) {
          this.closeSeenFlag = true;
          return { kind: 'close', at: pos };
        }
      }
      if (available < need) {
        // Keep the header bytes for the next chunk.
        if (this.partialLength === 0) {
          chunk.copy(this.partial, 0, pos, len);
          this.partialLength = len - pos;
        } else {
          this.partialLength = Math.min(available, MAX_HEADER_BYTES);
        }
        return PASS;
      }
      const fin = (b0 & 0x80) !== 0;
      let payload: number;
      if (len7 < 126) payload = len7;
      else if (len7 === 126) payload = header.readUInt16BE(offset + 2);
      else {
        const high = header.readUInt32BE(offset + 2);
        // Above 2^53 cannot be represented; no sane peer sends more than 2^32 in one frame.
        if (high > 0x1fffff) return this.cut(frameStart, 'bad-length');
        payload = high * 0x1_0000_0000 + header.readUInt32BE(offset + 6);
      }
      if (opcode < Opcode.Close) {
        this.messageBytes += payload;
        if (this.messageBytes > this.maxMessageBytes) return this.cut(frameStart, 'too-big');
        if (fin) this.messageBytes = 0;
        this.inMessage = !fin;
      } else if (opcode === Opcode.Close) {
        this.closeSeenFlag = true;
      }
      this.framesSeen += 1;
      // Consume the header from the chunk (only the part not gathered earlier).
      pos += need - this.partialLength;
      this.partialLength = 0;
      this.remaining = payload;
    }
    return PASS;
  }

  private get partial(): Buffer {
    this.partialBuffer ??= Buffer.alloc(MAX_HEADER_BYTES);
    return this.partialBuffer;
  }

  /** The rule a client frame's first two bytes break, if any (RFC 6455 §5.2, §5.4, §5.5). */
  private clientFrameViolation(b0: number, b1: number): FrameViolation | undefined {
    if ((b1 & 0x80) === 0) return 'unmasked';
    if ((b0 & 0x70) !== 0) return 'reserved-bits';
    const opcode = b0 & 0x0f;
    if (opcode >= Opcode.Close) {
      if (opcode > Opcode.Pong) return 'unknown-opcode';
      if ((b0 & 0x80) === 0 || (b1 & 0x7f) > 125) return 'bad-control-frame';
      return undefined;
    }
    if (opcode > Opcode.Binary) return 'unknown-opcode';
    // A continuation needs a message to continue; a new message must wait for the last to end.
    if ((opcode === Opcode.Continuation) !== this.inMessage) return 'bad-fragmentation';
    return undefined;
  }

  private cut(frameStart: number, violation: FrameViolation): FeedResult {
    return { kind: 'cut', at: Math.max(frameStart, 0), clean: frameStart >= 0, violation };
  }
}

/**
 * A masked close payload (mask at `at`, then `length` bytes): empty, or a status code a peer may
 * send (RFC 6455 §7.4: 1000–1014 but 1004–1006, or 3000–4999) and a UTF-8 reason.
 */
function validClosePayload(chunk: Buffer, at: number, length: number): boolean {
  if (length === 0) return true;
  if (length === 1) return false;
  const payload = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++)
    payload[i] = (chunk[at + 4 + i] as number) ^ (chunk[at + (i & 3)] as number);
  const code = payload.readUInt16BE(0);
  const known = code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
  if (!known && (code < 3000 || code > 4999)) return false;
  return isUtf8(payload.subarray(2));
}
