import { MAX_HEADER_BYTES, Opcode } from './ws-frame';

export type FeedResult =
  /** Forward the whole chunk. */
  | { readonly kind: 'pass' }
  /**
   * Forward `chunk.subarray(0, at)`, then stop: the next frame breaks a rule. `clean` is false
   * when part of that frame's header already left in an earlier chunk.
   */
  | {
      readonly kind: 'cut';
      readonly at: number;
      readonly clean: boolean;
      readonly violation: FrameViolation;
    };

export type FrameViolation = 'too-big' | 'bad-length';

const PASS: FeedResult = { kind: 'pass' };

/**
 * Follows WebSocket frame boundaries in one direction of a byte stream without copying or
 * unmasking payloads: it reads each header (2–14 bytes) as it passes and skips the payload.
 * That is all the relay needs to inject control frames between frames, to enforce the
 * message size limit, and to know whether a peer sent a close frame.
 */
export class FrameTracker {
  /** Payload bytes of the current frame still to pass. */
  private remaining = 0;
  /** A header split across chunks is gathered here. */
  private readonly partial = Buffer.alloc(MAX_HEADER_BYTES);
  private partialLength = 0;
  /** Payload bytes of the current (possibly fragmented) data message so far. */
  private messageBytes = 0;
  private closeSeenFlag = false;
  private framesSeen = 0;

  public constructor(private readonly maxMessageBytes: number = Number.POSITIVE_INFINITY) {}

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
        chunk.copy(this.partial, this.partialLength, pos, pos + copy);
        header = this.partial;
        offset = 0;
      }
      const available = this.partialLength === 0 ? len - pos : this.partialLength + (len - pos);
      const need = headerLength(header, offset, available);
      if (need === undefined || available < need) {
        // Keep the header bytes for the next chunk.
        if (this.partialLength === 0) {
          chunk.copy(this.partial, 0, pos, len);
          this.partialLength = len - pos;
        } else {
          this.partialLength = Math.min(available, MAX_HEADER_BYTES);
        }
        return PASS;
      }
      const b0 = header[offset] as number;
      const b1 = header[offset + 1] as number;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      const len7 = b1 & 0x7f;
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

  private cut(frameStart: number, violation: FrameViolation): FeedResult {
    return { kind: 'cut', at: Math.max(frameStart, 0), clean: frameStart >= 0, violation };
  }
}

/** Header length from its first bytes, or undefined while fewer than 2 are available. */
function headerLength(buf: Buffer, offset: number, available: number): number | undefined {
  if (available < 2) return undefined;
  const b1 = buf[offset + 1] as number;
  const len7 = b1 & 0x7f;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  return 2 + ext + ((b1 & 0x80) !== 0 ? 4 : 0);
}
