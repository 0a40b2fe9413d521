/**
 * Messages to the server (plugins/web-terminal/README.md, "Protocol"): input travels as binary
 * frames, control messages as text frames made of NUL and a JSON object, so nothing a user types
 * or pastes can be read as a control message.
 */
export type ControlMessage =
  | { readonly type: 'resize'; readonly cols: number; readonly rows: number }
  | { readonly type: 'pause' }
  | { readonly type: 'resume' };

const CONTROL_PREFIX = '\u0000';

export function encodeControl(message: ControlMessage): string {
  return CONTROL_PREFIX + JSON.stringify(message);
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
