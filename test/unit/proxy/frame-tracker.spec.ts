import { FrameTracker } from '../../../src/plugins/proxy/frame-tracker';
import { closeFrame, controlFrame, Opcode } from '../../../src/plugins/proxy/ws-frame';

/** Builds one frame as a client (masked) or server (unmasked) would send it. */
function frame(
  opcode: number,
  payloadLength: number,
  options: { fin?: boolean; masked?: boolean } = {},
): Buffer {
  const { fin = true, masked = false } = options;
  const ext = payloadLength < 126 ? 0 : payloadLength < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | opcode;
  const len7 = ext === 0 ? payloadLength : ext === 2 ? 126 : 127;
  header[1] = (masked ? 0x80 : 0) | len7;
  if (ext === 2) header.writeUInt16BE(payloadLength, 2);
  if (ext === 8) header.writeBigUInt64BE(BigInt(payloadLength), 2);
  return Buffer.concat([header, Buffer.alloc(payloadLength, 0x61)]);
}

/** Feeds `data` in pieces of `size` bytes and returns the tracker. */
function feedInPieces(tracker: FrameTracker, data: Buffer, size: number): void {
  for (let i = 0; i < data.length; i += size) {
    expect(tracker.feed(data.subarray(i, i + size))).toEqual({ kind: 'pass' });
  }
}

describe('FrameTracker', () => {
  it('is at a boundary only between frames', () => {
    const t = new FrameTracker();
    const f = frame(Opcode.Text, 10);
    t.feed(f.subarray(0, 5));
    expect(t.atBoundary).toBe(false);
    t.feed(f.subarray(5));
    expect(t.atBoundary).toBe(true);
    expect(t.frames).toBe(1);
  });

  it.each([1, 2, 3, 7, 13, 64, 1000])(
    'follows 7-bit, 16-bit and 64-bit lengths, masked or not, split every %i bytes',
    (size) => {
      const t = new FrameTracker();
      const stream = Buffer.concat([
        frame(Opcode.Text, 0),
        frame(Opcode.Binary, 125, { masked: true }),
        frame(Opcode.Binary, 126),
        frame(Opcode.Text, 65535, { masked: true }),
        frame(Opcode.Binary, 65536),
        frame(Opcode.Ping, 4, { masked: true }),
        frame(Opcode.Binary, 70000, { masked: true }),
      ]);
      feedInPieces(t, stream, size);
      expect(t.frames).toBe(7);
      expect(t.atBoundary).toBe(true);
      expect(t.closeSeen).toBe(false);
    },
  );

  it('notices a close frame', () => {
    const t = new FrameTracker();
    t.feed(closeFrame(1000, 'bye', true));
    expect(t.closeSeen).toBe(true);
    expect(t.atBoundary).toBe(true);
  });

  it('cuts before a message that exceeds the limit, at the frame start', () => {
    const t = new FrameTracker({ maxMessageBytes: 100 });
    const ok = frame(Opcode.Text, 100, { masked: true });
    const big = frame(Opcode.Binary, 101, { masked: true });
    const result = t.feed(Buffer.concat([ok, big]));
    expect(result).toEqual({ kind: 'cut', at: ok.length, clean: true, violation: 'too-big' });
  });

  it('counts a fragmented message as a whole against the limit', () => {
    const t = new FrameTracker({ maxMessageBytes: 100 });
    const first = frame(Opcode.Text, 60, { fin: false });
    const ping = frame(Opcode.Ping, 5);
    const second = frame(Opcode.Continuation, 41, { fin: true });
    expect(t.feed(Buffer.concat([first, ping]))).toEqual({ kind: 'pass' });
    expect(t.feed(second)).toEqual({ kind: 'cut', at: 0, clean: true, violation: 'too-big' });
  });

  it('starts counting again after a message ends', () => {
    const t = new FrameTracker({ maxMessageBytes: 100 });
    for (let i = 0; i < 5; i++) expect(t.feed(frame(Opcode.Binary, 100))).toEqual({ kind: 'pass' });
  });

  it('reports an unclean cut when the offending header began in an earlier chunk', () => {
    const t = new FrameTracker({ maxMessageBytes: 100 });
    const big = frame(Opcode.Binary, 200, { masked: true });
    expect(t.feed(big.subarray(0, 1))).toEqual({ kind: 'pass' });
    expect(t.feed(big.subarray(1))).toEqual({
      kind: 'cut',
      at: 0,
      clean: false,
      violation: 'too-big',
    });
  });

  it('rejects a 64-bit length beyond 2^53', () => {
    const t = new FrameTracker();
    const header = Buffer.from([0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    expect(t.feed(header)).toEqual({ kind: 'cut', at: 0, clean: true, violation: 'bad-length' });
  });
});

describe('FrameTracker for client frames (RFC 6455 §5)', () => {
  const client = (): FrameTracker => new FrameTracker({ fromClient: true });

  it('passes well-formed masked frames, fragments and interleaved control frames', () => {
    const t = client();
    const stream = Buffer.concat([
      frame(Opcode.Text, 10, { masked: true, fin: false }),
      frame(Opcode.Ping, 125, { masked: true }),
      frame(Opcode.Continuation, 10, { masked: true, fin: false }),
      frame(Opcode.Continuation, 0, { masked: true }),
      frame(Opcode.Binary, 700, { masked: true }),
      closeFrame(1000, 'bye', true),
    ]);
    for (const size of [2, 3, 5, 1000]) {
      const u = client();
      let held = Buffer.alloc(0);
      for (let i = 0; i < stream.length; i += size) {
        const piece = Buffer.concat([held, stream.subarray(i, i + size)]);
        const r = u.feed(piece);
        if (r.kind === 'hold') held = piece.subarray(piece.length - r.bytes);
        else {
          expect(r).toEqual({ kind: 'pass' });
          held = Buffer.alloc(0);
        }
      }
      expect(u.frames).toBe(6);
      expect(u.closeSeen).toBe(true);
    }
    expect(t.feed(stream)).toEqual({ kind: 'pass' });
  });

  it.each([
    ['an unmasked frame', frame(Opcode.Text, 5), 'unmasked'],
    ['RSV1 without an extension', Buffer.from([0xc1, 0x80, 0, 0, 0, 0]), 'reserved-bits'],
    ['RSV3', Buffer.from([0x92, 0x80, 0, 0, 0, 0]), 'reserved-bits'],
    ['reserved opcode 3', Buffer.from([0x83, 0x80, 0, 0, 0, 0]), 'unknown-opcode'],
    ['reserved opcode 0xB', Buffer.from([0x8b, 0x80, 0, 0, 0, 0]), 'unknown-opcode'],
    ['a ping over 125 bytes', frame(Opcode.Ping, 126, { masked: true }), 'bad-control-frame'],
    [
      'a fragmented close',
      frame(Opcode.Close, 2, { masked: true, fin: false }),
      'bad-control-frame',
    ],
    [
      'a continuation with no message',
      frame(Opcode.Continuation, 3, { masked: true }),
      'bad-fragmentation',
    ],
  ])('cuts %s before any of it is forwarded', (_what, bad, violation) => {
    const ok = frame(Opcode.Text, 3, { masked: true });
    const t = client();
    expect(t.feed(Buffer.concat([ok, bad]))).toEqual({
      kind: 'cut',
      at: ok.length,
      clean: true,
      violation,
    });
  });

  it('cuts a new message that starts before the fragmented one ended', () => {
    const t = client();
    const first = frame(Opcode.Text, 3, { masked: true, fin: false });
    expect(t.feed(first)).toEqual({ kind: 'pass' });
    expect(t.feed(frame(Opcode.Binary, 3, { masked: true }))).toEqual({
      kind: 'cut',
      at: 0,
      clean: true,
      violation: 'bad-fragmentation',
    });
  });

  /** A masked close frame with any raw payload. */
  const close = (payload: Buffer): Buffer => {
    const mask = Buffer.from([1, 2, 3, 4]);
    const body = Buffer.from(payload.map((x, i) => x ^ (mask[i % 4] as number)));
    return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, body]);
  };
  const code = (n: number, reason = Buffer.alloc(0)): Buffer =>
    Buffer.concat([Buffer.from([n >> 8, n & 0xff]), reason]);

  it.each([
    ['a one-byte payload', Buffer.from([3])],
    ['code 1005', code(1005)],
    ['code 1006', code(1006)],
    ['code 999', code(999)],
    ['code 2000', code(2000)],
    ['code 5000', code(5000)],
    ['a reason that is not UTF-8', code(1000, Buffer.from([0xc3, 0x28]))],
  ])('cuts a close frame with %s', (_what, payload) => {
    expect(client().feed(close(payload))).toEqual({
      kind: 'cut',
      at: 0,
      clean: true,
      violation: 'bad-close',
    });
  });

  it.each([Buffer.alloc(0), code(1000, Buffer.from('bye ✓')), code(4001), code(3000)])(
    'passes a valid close frame %#',
    (payload) => {
      const t = client();
      expect(t.feed(close(payload))).toEqual({ kind: 'pass' });
      expect(t.closeSeen).toBe(true);
    },
  );

  it('holds a close frame until it is whole', () => {
    const t = client();
    const f = close(code(1000, Buffer.from('done')));
    expect(t.feed(f.subarray(0, 4))).toEqual({ kind: 'hold', bytes: 4 });
    expect(t.feed(f.subarray(0, 9))).toEqual({ kind: 'hold', bytes: 9 });
    expect(t.feed(f)).toEqual({ kind: 'pass' });
    expect(t.closeSeen).toBe(true);
  });

  it('holds back a lone first header byte, so a bad frame split after it is still cut clean', () => {
    const t = client();
    const bad = frame(Opcode.Text, 5);
    expect(t.feed(bad.subarray(0, 1))).toEqual({ kind: 'hold', bytes: 1 });
    expect(t.atBoundary).toBe(true);
    expect(t.feed(bad)).toEqual({ kind: 'cut', at: 0, clean: true, violation: 'unmasked' });
  });
});

describe('control frames Portico writes', () => {
  it('encodes a close frame with code and reason, unmasked towards a client', () => {
    const f = closeFrame(1012, 'plugin restarting', false);
    expect(f[0]).toBe(0x88);
    expect(f[1]).toBe(2 + 'plugin restarting'.length);
    expect(f.readUInt16BE(2)).toBe(1012);
    expect(f.subarray(4).toString()).toBe('plugin restarting');
  });

  it('masks frames towards a plugin', () => {
    const f = closeFrame(1001, 'bye', true);
    expect(f[1]! & 0x80).toBe(0x80);
    const mask = f.subarray(2, 6);
    const payload = Buffer.from(f.subarray(6).map((b, i) => b ^ mask[i % 4]!));
    expect(payload.readUInt16BE(0)).toBe(1001);
    expect(payload.subarray(2).toString()).toBe('bye');
  });

  it('cuts a control payload at 125 bytes', () => {
    const f = controlFrame(Opcode.Ping, Buffer.alloc(300), false);
    expect(f[1]).toBe(125);
    expect(f.length).toBe(127);
  });
});
