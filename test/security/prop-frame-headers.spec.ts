import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';

import { FrameTracker } from '../../src/plugins/proxy/frame-tracker';
import type { FeedResult, FrameViolation } from '../../src/plugins/proxy/frame-tracker';
import { MAX_HEADER_BYTES } from '../../src/plugins/proxy/ws-frame';

const RUNS = Number(process.env.FC_NUM_RUNS ?? 300);

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

interface FrameSpec {
  readonly opcode: number;
  readonly fin: boolean;
  readonly payload: number;
  /** The payload's real content (close frames); otherwise filler. */
  readonly body?: Buffer;
}

/** Where one frame sits in a stream. */
interface Placed extends FrameSpec {
  readonly start: number;
  readonly headerEnd: number;
  readonly end: number;
}

const MASK_KEY = 0x88ff88ff;
const MASK_BYTES = [0x88, 0xff, 0x88, 0xff] as const;
const FILLER = Buffer.alloc(70_000, Buffer.from([0x88, 0xff]));

/**
 * One frame as a peer writes it (minimal length encoding). Without a `body`, the payload is
 * filler that reads as a close frame header with a 64-bit length, so a tracker that looked
 * into payloads would lose the boundaries at once.
 */
function encode(frame: FrameSpec, masked: boolean): Buffer {
  const ext = frame.payload < 126 ? 0 : frame.payload < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  header[0] = (frame.fin ? 0x80 : 0) | frame.opcode;
  header[1] = (masked ? 0x80 : 0) | (ext === 0 ? frame.payload : ext === 2 ? 126 : 127);
  if (ext === 2) header.writeUInt16BE(frame.payload, 2);
  if (ext === 8) header.writeBigUInt64BE(BigInt(frame.payload), 2);
  if (masked) header.writeUInt32BE(MASK_KEY, 2 + ext);
  if (frame.body === undefined) return Buffer.concat([header, FILLER.subarray(0, frame.payload)]);
  const body = Buffer.from(frame.body);
  if (masked)
    for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ MASK_BYTES[i & 3];
  return Buffer.concat([header, body]);
}

function place(
  frames: readonly FrameSpec[],
  masked: boolean,
): { stream: Buffer; placed: Placed[] } {
  const parts: Buffer[] = [];
  const placed: Placed[] = [];
  let at = 0;
  for (const frame of frames) {
    const bytes = encode(frame, masked);
    parts.push(bytes);
    placed.push({
      ...frame,
      start: at,
      headerEnd: at + bytes.length - frame.payload,
      end: at + bytes.length,
    });
    at += bytes.length;
  }
  return { stream: Buffer.concat(parts), placed };
}

const dataLength = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 125 }), weight: 12 },
  { arbitrary: fc.integer({ min: 126, max: 4000 }), weight: 4 },
  { arbitrary: fc.integer({ min: 65536, max: 66000 }), weight: 1 },
);
const controlFrame = fc.record({
  opcode: fc.constantFrom(OP.ping, OP.pong),
  fin: fc.constant(true),
  payload: fc.integer({ min: 0, max: 125 }),
});

/** A data message in 1–3 fragments, with pings/pongs allowed between its fragments. */
const dataMessage = fc
  .tuple(
    fc.constantFrom(OP.text, OP.binary),
    fc.array(fc.tuple(dataLength, fc.option(controlFrame, { nil: undefined })), {
      minLength: 1,
      maxLength: 3,
    }),
  )
  .map(([opcode, fragments]) =>
    fragments.flatMap(([payload, control], i): FrameSpec[] => {
      const frame = {
        opcode: i === 0 ? opcode : OP.continuation,
        fin: i === fragments.length - 1,
        payload,
      };
      return control !== undefined && i < fragments.length - 1 ? [frame, control] : [frame];
    }),
  );

/** A close frame's payload as RFC 6455 §5.5.1/§7.4 allow it: empty, or a code and UTF-8 reason. */
const closeBody = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc
    .tuple(
      fc.oneof(
        fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011),
        fc.integer({ min: 3000, max: 4999 }),
      ),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
    )
    .map(([code, reason]) => {
      const text = Buffer.from(reason, 'utf8').subarray(0, 123);
      const body = Buffer.alloc(2 + text.length);
      body.writeUInt16BE(code, 0);
      text.copy(body, 2);
      return body;
    })
    .filter((body) => isUtf8(body.subarray(2))),
);

/** A valid frame sequence as RFC 6455 allows it, ending with a close frame or not. */
const validFrames = fc
  .tuple(
    fc.array(
      fc.oneof(
        dataMessage,
        controlFrame.map((c) => [c]),
      ),
      { maxLength: 8 },
    ),
    fc.option(closeBody, { nil: undefined }),
  )
  .map(([messages, body]): FrameSpec[] => [
    ...messages.flat(),
    ...(body === undefined ? [] : [{ opcode: OP.close, fin: true, payload: body.length, body }]),
  ]);

/** Where to cut a stream: at random points, or every `n` bytes. */
type Chunking =
  | { readonly kind: 'points'; readonly points: number[] }
  | { readonly kind: 'every'; readonly n: number };
const chunking: fc.Arbitrary<Chunking> = fc.oneof(
  fc.array(fc.nat(), { maxLength: 40 }).map((points) => ({ kind: 'points' as const, points })),
  fc.integer({ min: 1, max: 17 }).map((n) => ({ kind: 'every' as const, n })),
);

/** At most this many pieces per stream, so a 64 KiB frame cut every byte stays quick. */
const MAX_PIECES = 4000;

function pieces(stream: Buffer, how: Chunking): Buffer[] {
  const every = how.kind === 'every' ? Math.max(how.n, Math.ceil(stream.length / MAX_PIECES)) : 0;
  const cuts =
    how.kind === 'every'
      ? Array.from({ length: Math.ceil(stream.length / every) }, (_, i) => i * every)
      : [0, ...how.points.map((p) => p % (stream.length + 1))];
  const sorted = [...new Set([...cuts, stream.length])].sort((a, b) => a - b);
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const from = sorted[i] as number;
    const to = sorted[i + 1] as number;
    if (to > from) out.push(stream.subarray(from, to));
  }
  return out;
}

interface Snapshot {
  /** Stream bytes forwarded so far. */
  readonly forwarded: number;
  readonly atBoundary: boolean;
  readonly frames: number;
  readonly closeSeen: boolean;
}

interface Outcome {
  readonly snapshots: Snapshot[];
  readonly cut?: {
    readonly at: number;
    readonly clean: boolean;
    readonly violation: FrameViolation;
  };
}

/** Feeds the pieces as the relay does: held bytes go again in front of the next piece. */
function drive(tracker: FrameTracker, chunks: readonly Buffer[]): Outcome {
  const snapshots: Snapshot[] = [];
  let carry = Buffer.alloc(0);
  let bufferStart = 0;
  for (const piece of chunks) {
    const buffer = carry.length > 0 ? Buffer.concat([carry, piece]) : piece;
    const result: FeedResult = tracker.feed(buffer);
    if (result.kind === 'cut') {
      if (result.at < 0 || result.at > buffer.length)
        throw new Error(`cut at ${result.at} of ${buffer.length} bytes`);
      return {
        snapshots,
        cut: { at: bufferStart + result.at, clean: result.clean, violation: result.violation },
      };
    }
    const held = result.kind === 'hold' ? result.bytes : 0;
    // Checked without `expect`: this runs for every piece.
    if (held < 0 || held > buffer.length) throw new Error(`held ${held} of ${buffer.length} bytes`);
    carry = Buffer.from(buffer.subarray(buffer.length - held));
    bufferStart += buffer.length - held;
    snapshots.push({
      forwarded: bufferStart,
      atBoundary: tracker.atBoundary,
      frames: tracker.frames,
      closeSeen: tracker.closeSeen,
    });
  }
  return { snapshots };
}

/** What a tracker must report after `forwarded` bytes of a stream made of `placed` frames. */
function expected(placed: readonly Placed[], forwarded: number): Omit<Snapshot, 'forwarded'> {
  const headersPassed = placed.filter((f) => f.headerEnd <= forwarded);
  return {
    atBoundary: forwarded === 0 || placed.some((f) => f.end === forwarded),
    frames: headersPassed.length,
    closeSeen: headersPassed.some((f) => f.opcode === OP.close),
  };
}

type Corruption = 'unmasked' | 'reserved-bit' | 'reserved-opcode' | 'fragmented-control';

/** Breaks one client rule in the header of `frame` (a data frame can't be a fragmented control). */
function breakHeader(stream: Buffer, frame: Placed, how: Corruption, pick: number): void {
  const b0 = stream[frame.start] as number;
  const b1 = stream[frame.start + 1] as number;
  const control = frame.opcode >= OP.close;
  if (how === 'unmasked' || (how === 'fragmented-control' && !control))
    stream[frame.start + 1] = b1 & 0x7f;
  else if (how === 'reserved-bit')
    stream[frame.start] = b0 | ([0x40, 0x20, 0x10][pick % 3] as number);
  else if (how === 'reserved-opcode')
    stream[frame.start] = (b0 & 0xf0) | ((control ? 0xb : 0x3) + pick);
  else stream[frame.start] = b0 & 0x7f;
}

/** The first snapshot that disagrees with the frame layout (one `expect` per run keeps it fast). */
function firstMismatch(placed: readonly Placed[], snapshots: readonly Snapshot[]): unknown {
  for (const snap of snapshots) {
    const want = expected(placed, snap.forwarded);
    if (
      snap.atBoundary !== want.atBoundary ||
      snap.frames !== want.frames ||
      snap.closeSeen !== want.closeSeen
    )
      return { got: snap, want };
  }
  return undefined;
}

/** Violations found only once a frame's whole header has passed; every other one is a client rule. */
const LENGTH_RULES: readonly FrameViolation[] = ['too-big', 'bad-length'];

describe('frame headers', () => {
  it('any chunking of a valid client frame stream → same frame boundaries, nothing refused', () => {
    fc.assert(
      fc.property(validFrames, chunking, (frames, how) => {
        const { stream, placed } = place(frames, true);
        const outcome = drive(new FrameTracker({ fromClient: true }), pieces(stream, how));
        expect(outcome.cut).toBeUndefined();
        expect(firstMismatch(placed, outcome.snapshots)).toBeUndefined();
        const last = outcome.snapshots[outcome.snapshots.length - 1];
        if (stream.length > 0) expect(last?.forwarded).toBe(stream.length);
      }),
      { numRuns: RUNS },
    );
  });

  it('any chunking of a plugin (unmasked) frame stream → same frame boundaries as one chunk', () => {
    fc.assert(
      fc.property(validFrames, chunking, (frames, how) => {
        const { stream, placed } = place(frames, false);
        const outcome = drive(new FrameTracker(), pieces(stream, how));
        expect(outcome.cut).toBeUndefined();
        expect(firstMismatch(placed, outcome.snapshots)).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  it('random bytes in any chunking → never throws, same verdict at the same byte as one chunk', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        chunking,
        fc.boolean(),
        fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
        (bytes, how, fromClient, maxMessageBytes) => {
          const stream = Buffer.from(bytes);
          const whole = drive(new FrameTracker({ fromClient, maxMessageBytes }), [stream]);
          const split = drive(
            new FrameTracker({ fromClient, maxMessageBytes }),
            pieces(stream, how),
          );
          expect(split.cut?.violation).toBe(whole.cut?.violation);
          if (whole.cut === undefined || split.cut === undefined) return;
          expect(whole.cut.clean).toBe(true);
          if (!LENGTH_RULES.includes(split.cut.violation)) {
            // A frame breaking a client rule is refused before its first byte leaves.
            expect(split.cut).toEqual(whole.cut);
          } else if (split.cut.clean) {
            expect(split.cut.at).toBe(whole.cut.at);
          } else {
            // Part of its header already left with an earlier piece.
            expect(split.cut.at).toBeGreaterThan(whole.cut.at);
            expect(split.cut.at).toBeLessThan(whole.cut.at + MAX_HEADER_BYTES);
          }
        },
      ),
      { numRuns: RUNS * 5 },
    );
  });

  it('a valid client stream with one frame header broken → refused at that frame, none of it sent', () => {
    fc.assert(
      fc.property(
        validFrames.filter((f) => f.length > 0),
        fc.nat(),
        fc.constantFrom<Corruption>(
          'unmasked',
          'reserved-bit',
          'reserved-opcode',
          'fragmented-control',
        ),
        fc.integer({ min: 0, max: 4 }),
        chunking,
        (frames, which, corruption, pick, how) => {
          const { stream, placed } = place(frames, true);
          const target = placed[which % placed.length] as Placed;
          const corrupted = Buffer.from(stream);
          breakHeader(corrupted, target, corruption, pick);
          const outcome = drive(new FrameTracker({ fromClient: true }), pieces(corrupted, how));
          const sentPastIt = outcome.snapshots.some((snap) => snap.forwarded > target.start);
          expect({ cut: outcome.cut, sentPastIt }).toEqual({
            cut: { at: target.start, clean: true, violation: expect.any(String) },
            sentPastIt: false,
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('a data message over maxMessageBytes in any chunking → cut at the frame that crosses it', () => {
    fc.assert(
      fc.property(
        validFrames,
        fc.integer({ min: 0, max: 5000 }),
        chunking,
        (frames, limit, how) => {
          const { stream, placed } = place(frames, true);
          let message = 0;
          let crossing: Placed | undefined;
          for (const f of placed) {
            if (f.opcode >= OP.close) continue;
            message += f.payload;
            if (message > limit) {
              crossing = f;
              break;
            }
            if (f.fin) message = 0;
          }
          const outcome = drive(
            new FrameTracker({ fromClient: true, maxMessageBytes: limit }),
            pieces(stream, how),
          );
          expect(outcome.cut?.violation).toBe(crossing === undefined ? undefined : 'too-big');
          if (crossing !== undefined && outcome.cut !== undefined) {
            if (outcome.cut.clean) expect(outcome.cut.at).toBe(crossing.start);
            else expect(outcome.cut.at).toBeLessThan(crossing.headerEnd);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
