/**
 * Messages between the frontend and the server (plugins/web-terminal/README.md, "Protocol"):
 * input and output travel as binary frames, control messages as text frames made of NUL and a
 * JSON object, so nothing a user types or pastes can be read as a control message.
 */
export type ControlMessage =
  | { readonly type: 'resize'; readonly cols: number; readonly rows: number }
  | { readonly type: 'pause' }
  | { readonly type: 'resume' }
  /** End the session now instead of keeping it for a re-attach (the terminal is closed). */
  | { readonly type: 'end' };

/** Control messages from the server. */
export type ServerMessage =
  /** The session this socket is attached to; `resumed` when it was there before this socket. */
  | { readonly type: 'session'; readonly id: string; readonly resumed: boolean }
  /** The session asked for (`?session=`) is not there any more: a new one follows. */
  | { readonly type: 'session-new'; readonly reason: string };

const CONTROL_PREFIX = '\u0000';

export function encodeControl(message: ControlMessage): string {
  return CONTROL_PREFIX + JSON.stringify(message);
}

/**
 * A text frame from the server as a control message, or undefined when it is not one this
 * frontend understands (such frames are ignored, never shown).
 */
export function decodeServerMessage(text: string): ServerMessage | undefined {
  if (!text.startsWith(CONTROL_PREFIX)) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(text.slice(CONTROL_PREFIX.length));
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const fields = message as Record<string, unknown>;
  if (fields.type === 'session' && typeof fields.id === 'string') {
    return { type: 'session', id: fields.id, resumed: fields.resumed === true };
  }
  if (fields.type === 'session-new') {
    return { type: 'session-new', reason: String(fields.reason) };
  }
  return undefined;
}

const encoder = new TextEncoder();

/** Keystrokes and pastes as xterm reports them (a JavaScript string), in UTF-8. */
export function encodeInput(data: string): Uint8Array {
  return encoder.encode(data);
}

/** xterm's `onBinary` data: one character per byte (some mouse reports), sent as those bytes. */
export function encodeBinaryInput(data: string): Uint8Array {
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
  return bytes;
}
