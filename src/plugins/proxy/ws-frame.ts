import { randomBytes } from 'node:crypto';

/** RFC 6455 opcodes the relay looks at. */
export const enum Opcode {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xa,
}

/** Close codes Portico sends itself (docs/plugin-contract.md §4). */
export const CloseCode = {
  GoingAway: 1001,
  ProtocolError: 1002,
  MessageTooBig: 1009,
  InternalError: 1011,
  ServiceRestart: 1012,
  TokenExpired: 4401,
  AccessRevoked: 4403,
  UnknownPlugin: 4404,
  PluginNotRunning: 4503,
  UpstreamRefused: 4502,
  UpstreamTimeout: 4504,
} as const;

/** Longest frame header: 2 bytes + 8-byte length + 4-byte mask. */
export const MAX_HEADER_BYTES = 14;

/**
 * Builds a control frame (FIN set). Frames towards a server must be masked (RFC 6455 §5.3);
 * the payload of a control frame is at most 125 bytes, so a longer close reason is cut.
 */
export function controlFrame(opcode: Opcode, payload: Buffer, masked: boolean): Buffer {
  const body = payload.subarray(0, 125);
  const frame = Buffer.allocUnsafe(2 + (masked ? 4 : 0) + body.length);
  frame[0] = 0x80 | opcode;
  frame[1] = (masked ? 0x80 : 0) | body.length;
  if (!masked) {
    body.copy(frame, 2);
    return frame;
  }
  const mask = randomBytes(4);
  mask.copy(frame, 2);
  for (let i = 0; i < body.length; i++)
    frame[6 + i] = (body[i] as number) ^ (mask[i & 3] as number);
  return frame;
}

export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const reasonBytes = Buffer.from(reason, 'utf8').subarray(0, 123);
  const payload = Buffer.allocUnsafe(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  reasonBytes.copy(payload, 2);
  return controlFrame(Opcode.Close, payload, masked);
}
