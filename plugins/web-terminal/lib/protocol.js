'use strict';
// The wire protocol between the terminal frontend and this server (README.md, "Protocol").
//
// Every binary frame, and every text frame that does not start with NUL, is input for the pty,
// written unchanged. A text frame starting with NUL (U+0000) is a control message: NUL then a
// JSON object. Typed or pasted text never starts with NUL when it travels the way the frontend
// sends it (binary frames), and a pasted JSON document is just text, so data can never be read
// as a command.

/** First character of a control message. */
const CONTROL_PREFIX = 0x00;

/** A session id: base64url of 16 random bytes (server.js hands them out). */
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** Bounds for the terminal's columns and rows, from the client or the query string. */
const MIN_SIZE = 1;
const MAX_SIZE = 1000;

/** A size the pty accepts: an integer from 1 to 1000. */
function isValidSize(value) {
  return Number.isInteger(value) && value >= MIN_SIZE && value <= MAX_SIZE;
}

/** A `cols`/`rows` query parameter as a size, or undefined when absent or out of bounds. */
function parseSizeParam(value) {
  if (typeof value !== 'string' || !/^\d{1,4}$/.test(value)) return undefined;
  const size = Number(value);
  return isValidSize(size) ? size : undefined;
}

/** The `session` query parameter when it has the shape of a session id, else undefined. */
function parseSessionParam(value) {
  return typeof value === 'string' && SESSION_ID_PATTERN.test(value) ? value : undefined;
}

/**
 * The `detachMs` query parameter: a decimal integer of milliseconds, clamped to
 * [`min`, `max`]. It can only shorten the grace period (`max` is the default); absent or
 * malformed gives undefined (the default applies).
 */
function parseDetachParam(value, min, max) {
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) return undefined;
  return Math.min(max, Math.max(min, Number(value)));
}

/** A control message for the client: a text frame made of NUL and a JSON object. */
function encodeControl(message) {
  return `\u0000${JSON.stringify(message)}`;
}

/**
 * What a message from the client asks for:
 * `{ kind: 'input', data }`, `{ kind: 'resize', cols, rows }`, `{ kind: 'pause' }`,
 * `{ kind: 'resume' }`, `{ kind: 'end' }` (end the session now, do not keep it detached), or `{ kind: 'ignored', why }` for a control message this server does not
 * understand (never written to the pty: the prefix is reserved).
 *
 * @param {Buffer} data
 * @param {boolean} isBinary
 */
function parseClientMessage(data, isBinary) {
  if (isBinary || data.length === 0 || data[0] !== CONTROL_PREFIX) return { kind: 'input', data };
  let message;
  try {
    message = JSON.parse(data.subarray(1).toString('utf8'));
  } catch {
    return { kind: 'ignored', why: 'control message is not JSON' };
  }
  if (typeof message !== 'object' || message === null) {
    return { kind: 'ignored', why: 'control message is not an object' };
  }
  switch (message.type) {
    case 'resize':
      if (!isValidSize(message.cols) || !isValidSize(message.rows)) {
        return { kind: 'ignored', why: 'resize needs integer cols and rows from 1 to 1000' };
      }
      return { kind: 'resize', cols: message.cols, rows: message.rows };
    case 'pause':
      return { kind: 'pause' };
    case 'resume':
      return { kind: 'resume' };
    case 'end':
      return { kind: 'end' };
    default:
      return { kind: 'ignored', why: 'unknown control message type' };
  }
}

module.exports = {
  CONTROL_PREFIX,
  MIN_SIZE,
  MAX_SIZE,
  isValidSize,
  parseSizeParam,
  parseSessionParam,
  parseDetachParam,
  encodeControl,
  parseClientMessage,
};
