'use strict';
// One shell in one pty, and the WebSocket currently attached to it. README.md describes the
// protocol, flow control and sessions.
//
// A session outlives its socket: when the socket closes for any other reason than the shell
// exiting (a token refresh closes it with 4401, the network drops, the tab reloads), the shell
// stays DETACHED for a grace period, with its output kept (at most 1 MiB) for the socket that
// re-attaches with the session's id. A second attach takes the session over from the first.
// When the shell exits, the grace period runs out, the client asks to end it, access is revoked
// or the server stops, the session ends, and with it everything it started.
const { randomBytes } = require('node:crypto');

const pty = require('node-pty');
const { WebSocket } = require('ws');

const { encodeControl, parseClientMessage } = require('./protocol');
const { PtyWriter } = require('./pty-writer');
const { SESSION_MARKER_VARIABLE, signalSession } = require('./session-processes');

const MIB = 1024 * 1024;
/** Output waiting in the WebSocket above which the pty is no longer read (the shell blocks). */
const OUTPUT_HIGH_WATER = MIB;
/** ... and below which it is read again. */
const OUTPUT_LOW_WATER = 256 * 1024;
/** Input waiting for the pty above which the WebSocket is no longer read. */
const INPUT_HIGH_WATER = MIB;
const INPUT_LOW_WATER = 256 * 1024;
/** Output kept for the next client while no socket is attached: at most this much. */
const HELD_OUTPUT_LIMIT = MIB;
/**
 * The most one read from the pty delivers (libuv reads at most 64 KiB at a time). The pty is
 * paused once the held output is within this of the limit, so the next read still fits.
 */
const PTY_READ_MAX = 64 * 1024;
/** Time between SIGHUP and SIGKILL for what the session left running. */
const KILL_GRACE_MS = 1500;

/** Close codes this server sends or reads (docs/plugin-contract.md §4 for Portico's own). */
const CloseCode = Object.freeze({
  Exited: 1000,
  GoingAway: 1001,
  InternalError: 1011,
  /** Portico: the user lost access to this plugin. The session ends at once. */
  AccessRevoked: 4403,
  /** Another socket attached to this session. */
  AttachedElsewhere: 4409,
});

/** Variables of this server that a shell must not see. */
const HIDDEN_VARIABLES = ['PLUGIN_IDENTITY_SECRET'];

function shellEnvironment(shell, marker) {
  const env = { ...process.env };
  for (const name of HIDDEN_VARIABLES) delete env[name];
  // PORTICO_PLUGIN_TAG stays: Portico finds the plugin's descendants by it (contract §2).
  env.TERM = 'xterm-256color';
  env.COLORTERM = 'truecolor';
  env.SHELL = shell;
  env[SESSION_MARKER_VARIABLE] = marker;
  // Portico passes no locale; without one, bash's line editing treats UTF-8 as bytes.
  if (env.LANG === undefined && env.LC_ALL === undefined) env.LANG = 'C.UTF-8';
  return env;
}

/**
 * @typedef {{ cols: number | undefined, rows: number | undefined, detachMs: number }} Attachment
 *   what a connection asks for: a size (undefined: keep the current one) and the grace period
 *   that follows when this connection's socket closes
 */

class TerminalSession {
  /**
   * @param {{ shell: string, cwd: string, cols: number, rows: number, user: string,
   *   log: (event: string, fields?: object) => void,
   *   onEnd: (session: TerminalSession, reason: string) => void,
   *   onDetach: (session: TerminalSession) => void,
   *   onEnded: (session: TerminalSession) => void }} options
   *   onEnd: the session ended (nothing can attach any more); onDetach: its socket closed and it
   *   waits for a client; onEnded: what it left running has been killed too
   */
  constructor(options) {
    /**
     * What a client re-attaches with. Only its user can use it, but it is still kept out of
     * logs and out of the shell's environment.
     */
    this.id = randomBytes(16).toString('base64url');
    /** In the environment of every process of the session (found by it at the end); in logs. */
    this.marker = randomBytes(12).toString('hex');
    this.user = options.user;
    this.options = options;
    this.cols = options.cols;
    this.rows = options.rows;
    this.pty = undefined;
    this.writer = undefined;
    /** @type {WebSocket | undefined} the attached socket; undefined while detached */
    this.ws = undefined;
    this.detachMs = 0;
    this.detachTimer = undefined;
    /** When the socket went away (Date.now()), while detached: the oldest ones go first. */
    this.detachedAt = undefined;
    /** @type {Buffer[]} output read while no open socket was attached, for the next one */
    this.held = [];
    this.heldBytes = 0;
    this.ended = false;
    this.exited = false;
    this.killTimer = undefined;
    /** Why the pty is not read: too much held output, a slow socket, or the client asked. */
    this.heldFull = false;
    this.socketBacklogged = false;
    this.clientPaused = false;
    this.outputPaused = false;
    this.afterSend = () => undefined;
  }

  /** Whether the session waits for a client (its shell runs, no socket is attached). */
  get detached() {
    return !this.ended && this.ws === undefined;
  }

  /** Whether the pty is not being read at the moment (slow or absent client, or client asked). */
  get paused() {
    return this.outputPaused;
  }

  /** Output sent but not yet written to the client's connection. */
  get bufferedAmount() {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Input received but not yet taken by the pty. */
  get queuedInputBytes() {
    return this.writer?.pendingBytes ?? 0;
  }

  /**
   * Spawns the shell and attaches `ws` to it; a spawn failure closes the socket with 1011.
   * @param {WebSocket} ws
   * @param {Attachment} attachment
   */
  start(ws, attachment) {
    const { shell, cwd, log } = this.options;
    try {
      this.pty = pty.spawn(shell, [], {
        name: 'xterm-256color',
        cols: this.cols,
        rows: this.rows,
        cwd,
        env: shellEnvironment(shell, this.marker),
        encoding: null, // raw bytes both ways: UTF-8 split across reads is the client's to join
      });
    } catch (err) {
      log('spawn_failed', { session: this.marker, shell, cwd, reason: err.message });
      ws.close(CloseCode.InternalError, 'could not start a shell');
      this.end('spawn failed');
      return;
    }
    log('session_started', {
      session: this.marker,
      user: this.user,
      pid: this.pty.pid,
      cwd,
      cols: this.cols,
      rows: this.rows,
    });
    this.writer = this.createWriter();
    this.pty.onData((chunk) => this.sendOutput(chunk));
    this.pty.onExit(({ exitCode, signal }) => this.exit(signal ? 128 + signal : exitCode));
    this.attach(ws, attachment, false);
  }

  /**
   * Makes `ws` the session's socket: a socket attached before is closed with 4409, the output
   * held meanwhile is sent first, then live output follows.
   * @param {WebSocket} ws
   * @param {Attachment} attachment
   * @param {boolean} resumed whether this re-attaches (false for the socket that started it)
   */
  attach(ws, attachment, resumed = true) {
    if (this.ended) throw new Error('cannot attach to an ended session');
    const previous = this.ws;
    if (previous !== undefined) {
      this.ws = undefined;
      // Its input is ignored from now on; a paused socket would not read the peer's close reply.
      previous.resume();
      if (previous.readyState === WebSocket.OPEN) {
        previous.close(CloseCode.AttachedElsewhere, 'attached elsewhere');
      }
    }
    clearTimeout(this.detachTimer);
    this.detachTimer = undefined;
    this.detachedAt = undefined;
    this.ws = ws;
    this.detachMs = attachment.detachMs;
    this.socketBacklogged = false;
    this.clientPaused = false;
    this.afterSend = () => {
      if (this.ws === ws && this.socketBacklogged && ws.bufferedAmount <= OUTPUT_LOW_WATER) {
        this.socketBacklogged = false;
        this.updateOutputFlow();
      }
    };
    ws.on('message', (data, isBinary) => this.receive(ws, data, isBinary));
    ws.on('close', (code) => this.socketClosed(ws, code));
    ws.send(encodeControl({ type: 'session', id: this.id, resumed }));

    const replayed = this.heldBytes;
    if (resumed) {
      this.options.log('session_attached', {
        session: this.marker,
        user: this.user,
        tookOver: previous !== undefined,
        replayedBytes: replayed,
      });
      const cols = attachment.cols ?? this.cols;
      const rows = attachment.rows ?? this.rows;
      if (cols !== this.cols || rows !== this.rows) this.resize(cols, rows);
    }
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.heldFull = false;
    for (const chunk of held) this.sendOutput(chunk);
    // Input still queued from the previous socket keeps this one waiting as well.
    if (this.writer?.aboveHighWater) ws.pause();
    this.updateOutputFlow();
  }

  /**
   * Input goes straight to the pty's descriptor so that what is still queued is known. A node-pty
   * without a numeric `fd` (not Unix) gets its own `write`, without input flow control.
   */
  createWriter() {
    const { pty: terminal } = this;
    if (typeof terminal.fd !== 'number') {
      return {
        write: (buffer) => {
          terminal.write(buffer);
          return true;
        },
        dispose: () => undefined,
        pendingBytes: 0,
        aboveHighWater: false,
      };
    }
    return new PtyWriter(
      terminal.fd,
      {
        onDrain: () => this.ws?.resume(),
        onError: (err) => {
          this.options.log('pty_write_failed', { session: this.marker, reason: err.message });
          if (this.ws?.readyState === WebSocket.OPEN) {
            this.ws.close(CloseCode.InternalError, 'terminal input failed');
          }
          this.end('terminal input failed');
        },
      },
      { highWaterMark: INPUT_HIGH_WATER, lowWaterMark: INPUT_LOW_WATER },
    );
  }

  /** Closes the socket with 1001 and ends the shell (the server is stopping). */
  shutdown() {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.close(CloseCode.GoingAway, 'plugin stopping');
    }
    this.end('plugin stopping');
  }

  /** SIGKILL now whatever the session left running (the server exits next). */
  killRemaining() {
    if (this.pty === undefined) return;
    clearTimeout(this.killTimer);
    signalSession(this.pty.pid, this.marker, 'SIGKILL');
  }

  sendOutput(chunk) {
    const { ws } = this;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) {
      this.hold(chunk);
      return;
    }
    ws.send(chunk, { binary: true }, this.afterSend);
    if (!this.socketBacklogged && ws.bufferedAmount > OUTPUT_HIGH_WATER) {
      this.socketBacklogged = true;
      this.updateOutputFlow();
    }
  }

  /** Keeps output nobody can receive now (detached, or the socket is closing) for the next one. */
  hold(chunk) {
    if (this.ended) return;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (!this.heldFull && this.heldBytes > HELD_OUTPUT_LIMIT - PTY_READ_MAX) {
      this.heldFull = true;
      this.updateOutputFlow();
    }
  }

  updateOutputFlow() {
    const pause = this.heldFull || this.socketBacklogged || this.clientPaused;
    if (pause === this.outputPaused || this.pty === undefined || this.exited) return;
    this.outputPaused = pause;
    if (pause) this.pty.pause();
    else this.pty.resume();
  }

  resize(cols, rows) {
    try {
      this.pty.resize(cols, rows);
      this.cols = cols;
      this.rows = rows;
    } catch (err) {
      this.options.log('resize_failed', { session: this.marker, reason: err.message });
    }
  }

  receive(ws, data, isBinary) {
    if (this.ended || ws !== this.ws) return; // a socket taken over says nothing any more
    const message = parseClientMessage(data, isBinary);
    switch (message.kind) {
      case 'input':
        if (!this.writer.write(message.data)) ws.pause();
        break;
      case 'resize':
        this.resize(message.cols, message.rows);
        break;
      case 'pause':
      case 'resume':
        this.clientPaused = message.kind === 'pause';
        this.updateOutputFlow();
        break;
      case 'end':
        ws.close(CloseCode.Exited, 'session ended');
        this.end('ended by the client');
        break;
      default:
        break; // an unknown control message: reserved, never typed into the shell
    }
  }

  /**
   * The attached socket closed. Unless the session ended already (then the server closed it),
   * the shell waits, detached, for `detachMs`; a user who lost access gets no such wait.
   */
  socketClosed(ws, code) {
    if (ws !== this.ws || this.ended) return;
    this.ws = undefined;
    this.socketBacklogged = false;
    this.clientPaused = false;
    if (code === CloseCode.AccessRevoked) {
      this.end('access revoked');
      return;
    }
    this.detachedAt = Date.now();
    this.detachTimer = setTimeout(() => this.end('detach expired'), this.detachMs);
    this.options.log('session_detached', {
      session: this.marker,
      code,
      graceMs: this.detachMs,
    });
    this.updateOutputFlow();
    this.options.onDetach(this);
  }

  exit(code) {
    this.exited = true;
    this.options.log('session_exited', { session: this.marker, code });
    // Queued after the output already sent, so the client sees all of it before the close.
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.close(CloseCode.Exited, `exited ${code}`);
    this.end('exited');
  }

  /**
   * Ends the session once: nothing can attach any more, input stops, the shell and its jobs get
   * SIGHUP, whatever still runs KILL_GRACE_MS later gets SIGKILL.
   */
  end(reason) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.detachTimer);
    this.detachTimer = undefined;
    this.held = [];
    this.heldBytes = 0;
    this.writer?.dispose();
    this.options.onEnd(this, reason);
    if (this.pty === undefined) {
      this.options.onEnded(this);
      return;
    }
    const { pid } = this.pty;
    const found = signalSession(pid, this.marker, 'SIGHUP');
    if (!this.exited) {
      try {
        this.pty.destroy(); // closes our side of the pty (the kernel hangs up the session too)
      } catch {
        // already closed
      }
    }
    this.options.log('session_ended', { session: this.marker, reason, processes: found });
    this.killTimer = setTimeout(() => {
      signalSession(pid, this.marker, 'SIGKILL');
      this.options.onEnded(this);
    }, KILL_GRACE_MS);
  }
}

module.exports = { TerminalSession, CloseCode, HELD_OUTPUT_LIMIT };
