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

/**
 * What a message from the client asks for:
 * `{ kind: 'input', data }`, `{ kind: 'resize', cols, rows }`, `{ kind: 'pause' }`,
 * `{ kind: 'resume' }`, or `{ kind: 'ignored', why }` for a control message this server does not
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
  parseClientMessage,
};
