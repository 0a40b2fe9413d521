import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';

/** A client frame (RFC 6455 §5.2) with every header bit settable; payloads under 64 KiB. */
export function rawFrame(
  opcode: number,
  payload: Buffer,
  options: { fin?: boolean; masked?: boolean; rsv?: number } = {},
): Buffer {
  const { fin = true, masked = true, rsv = 0 } = options;
  const len = payload.length;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const m = masked ? 0x80 : 0;
  const head =
    len < 126 ? Buffer.from([b0, m | len]) : Buffer.from([b0, m | 126, len >> 8, len & 0xff]);
  if (!masked) return Buffer.concat([head, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([head, mask, body]);
}

/** A WebSocket upgrade request as bytes, with any request line, path or extra header lines. */
export function upgradeRequest(
  port: number,
  path: string,
  extra: string[] = [],
  method = 'GET',
): Buffer {
  return Buffer.from(
    `${method} ${path} HTTP/1.1\r\n` +
      `Host: 127.0.0.1:${port}\r\n` +
      'Connection: Upgrade\r\n' +
      'Upgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
      extra.map((line) => `${line}\r\n`).join('') +
      '\r\n',
  );
}

export interface RawExchange {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves once the received bytes satisfy `done`, or rejects when the socket closes first. */
  until(done: (data: Buffer) => boolean): Promise<Buffer>;
  /** Resolves with everything received when the server has closed the connection. */
  closed: Promise<Buffer>;
}

/** Opens a TCP connection to 127.0.0.1:`port` and writes `bytes`. */
export function rawConnect(port: number, bytes?: Buffer): RawExchange {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  let data = Buffer.alloc(0);
  const waiters: {
    done: (d: Buffer) => boolean;
    resolve(d: Buffer): void;
    reject(e: Error): void;
  }[] = [];
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    for (const w of [...waiters]) {
      if (w.done(data)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(data);
      }
    }
  });
  const closed = new Promise<Buffer>((resolve) =>
    socket.once('close', () => {
      for (const w of waiters.splice(0)) w.reject(new Error('connection closed first'));
      resolve(data);
    }),
  );
  if (bytes !== undefined) socket.write(bytes);
  return {
    socket,
    received: () => data,
    until: (done) =>
      done(data)
        ? Promise.resolve(data)
        : new Promise((resolve, reject) => waiters.push({ done, resolve, reject })),
    closed,
  };
}

/** The status code of the first HTTP response head in `data`. */
export function statusOf(data: Buffer): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'))?.[1] ?? 0);
}

/** True once `data` holds a complete response head. */
export const headDone = (data: Buffer): boolean => data.includes('\r\n\r\n');

/** Unmasked frames parsed from `data` from `start` on; `rest` is an incomplete tail. */
export function parseFrames(
  data: Buffer,
  start = 0,
): { frames: { opcode: number; payload: Buffer }[]; rest: Buffer } {
  const frames: { opcode: number; payload: Buffer }[] = [];
  let pos = start;
  while (data.length - pos >= 2) {
    const opcode = (data[pos] as number) & 0x0f;
    let len = (data[pos + 1] as number) & 0x7f;
    let at = pos + 2;
    if (len === 126) {
      if (data.length - pos < 4) break;
      len = data.readUInt16BE(pos + 2);
      at = pos + 4;
    }
    if (data.length < at + len) break;
    frames.push({ opcode, payload: data.subarray(at, at + len) });
    pos = at + len;
  }
  return { frames, rest: data.subarray(pos) };
}

/** The complete server frames after the response head in `data`. */
export function serverFrames(data: Buffer): { opcode: number; payload: Buffer }[] {
  const head = data.indexOf('\r\n\r\n');
  return head === -1 ? [] : parseFrames(data, head + 4).frames;
}

/** The close code of the first close frame among `data`'s server frames. */
export function closeCodeOf(data: Buffer): number | undefined {
  const close = serverFrames(data).find((f) => f.opcode === 0x8);
  return close === undefined || close.payload.length < 2
    ? undefined
    : close.payload.readUInt16BE(0);
}

export interface RawResponse {
  readonly status: number;
  readonly head: string;
  readonly body: Buffer;
}

/** The complete HTTP/1.1 responses in `data`, in order (Content-Length or chunked bodies). */
export function parseResponses(data: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', pos);
    if (end === -1) return out;
    const head = data.subarray(pos, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    let at = end + 4;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', at);
        if (lineEnd === -1) return out;
        const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
        if (data.length < lineEnd + 2 + size + 2) return out;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      out.push({ status, head, body: Buffer.concat(parts) });
    } else {
      const n = length === undefined ? 0 : Number(length);
      if (data.length < at + n) return out;
      out.push({ status, head, body: data.subarray(at, at + n) });
      at += n;
    }
    pos = at;
  }
}
