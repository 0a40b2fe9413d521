'use strict';
// One WebSocket, one pty, one shell: created when a client connects, ended (with everything the
// shell started) when either side goes away. README.md describes the protocol and flow control.
const { randomBytes } = require('node:crypto');

const pty = require('node-pty');
const { WebSocket } = require('ws');

const { parseClientMessage } = require('./protocol');
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
/** Time between SIGHUP and SIGKILL for what the session left running. */
const KILL_GRACE_MS = 1500;

/** Close codes this server sends (docs/plugin-contract.md §4 for the ones Portico adds). */
const CloseCode = Object.freeze({ Exited: 1000, GoingAway: 1001, InternalError: 1011 });

/** Variables of this server that a shell must not see. */
const HIDDEN_VARIABLES = ['PLUGIN_IDENTITY_SECRET'];

function shellEnvironment(shell, sessionId) {
  const env = { ...process.env };
  for (const name of HIDDEN_VARIABLES) delete env[name];
  // PORTICO_PLUGIN_TAG stays: Portico finds the plugin's descendants by it (contract §2).
  env.TERM = 'xterm-256color';
  env.COLORTERM = 'truecolor';
  env.SHELL = shell;
  env[SESSION_MARKER_VARIABLE] = sessionId;
  // Portico passes no locale; without one, bash's line editing treats UTF-8 as bytes.
  if (env.LANG === undefined && env.LC_ALL === undefined) env.LANG = 'C.UTF-8';
  return env;
}

class TerminalSession {
  /**
   * @param {WebSocket} ws
   * @param {{ shell: string, cwd: string, cols: number, rows: number, user: string | null,
   *   log: (event: string, fields?: object) => void, onEnded: (session: TerminalSession) => void }} options
   */
  constructor(ws, options) {
    this.id = randomBytes(12).toString('hex');
    this.ws = ws;
    this.options = options;
    this.pty = undefined;
    this.writer = undefined;
    this.ended = false;
    this.exited = false;
    this.killTimer = undefined;
    this.socketBacklogged = false;
    this.clientPaused = false;
    this.outputPaused = false;
    this.afterSend = () => {
      if (this.socketBacklogged && this.ws.bufferedAmount <= OUTPUT_LOW_WATER) {
        this.socketBacklogged = false;
        this.updateOutputFlow();
      }
    };
  }

  /** Spawns the shell and wires it to the socket; a spawn failure closes the socket with 1011. */
  start() {
    const { shell, cwd, cols, rows, log } = this.options;
    this.ws.on('close', () => this.end('socket closed'));
    try {
      this.pty = pty.spawn(shell, [], {
        name: 'xterm-256color',
        cols,
        rows,
        cwd,
        env: shellEnvironment(shell, this.id),
        encoding: null, // raw bytes both ways: UTF-8 split across reads is the client's to join
      });
    } catch (err) {
      log('spawn_failed', { session: this.id, shell, cwd, reason: err.message });
      this.ws.close(CloseCode.InternalError, 'could not start a shell');
      this.end('spawn failed');
      return;
    }
    log('session_started', {
      session: this.id,
      user: this.options.user,
      pid: this.pty.pid,
      cwd,
      cols,
      rows,
    });
    this.writer = this.createWriter();
    this.pty.onData((chunk) => this.sendOutput(chunk));
    this.pty.onExit(({ exitCode, signal }) => this.exit(signal ? 128 + signal : exitCode));
    this.ws.on('message', (data, isBinary) => this.receive(data, isBinary));
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
      };
    }
    return new PtyWriter(
      terminal.fd,
      {
        onDrain: () => this.ws.resume(),
        onError: (err) => {
          this.options.log('pty_write_failed', { session: this.id, reason: err.message });
          this.ws.close(CloseCode.InternalError, 'terminal input failed');
        },
      },
      { highWaterMark: INPUT_HIGH_WATER, lowWaterMark: INPUT_LOW_WATER },
    );
  }

  /** Whether the pty is not being read at the moment (slow client or client asked). */
  get paused() {
    return this.outputPaused;
  }

  /** Output sent but not yet written to the client's connection. */
  get bufferedAmount() {
    return this.ws.bufferedAmount;
  }

  /** Input received but not yet taken by the pty. */
  get queuedInputBytes() {
    return this.writer?.pendingBytes ?? 0;
  }

  /** Closes the socket with 1001 and ends the shell (the server is stopping). */
  shutdown() {
    if (this.ws.readyState === WebSocket.OPEN)
      this.ws.close(CloseCode.GoingAway, 'plugin stopping');
    this.end('plugin stopping');
  }

  /** SIGKILL now whatever the session left running (the server exits next). */
  killRemaining() {
    if (this.pty === undefined) return;
    clearTimeout(this.killTimer);
    signalSession(this.pty.pid, this.id, 'SIGKILL');
  }

  sendOutput(chunk) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(chunk, { binary: true }, this.afterSend);
    if (!this.socketBacklogged && this.ws.bufferedAmount > OUTPUT_HIGH_WATER) {
      this.socketBacklogged = true;
      this.updateOutputFlow();
    }
  }

  updateOutputFlow() {
    const pause = this.socketBacklogged || this.clientPaused;
    if (pause === this.outputPaused || this.pty === undefined || this.exited) return;
    this.outputPaused = pause;
    if (pause) this.pty.pause();
    else this.pty.resume();
  }

  receive(data, isBinary) {
    if (this.ended) return;
    const message = parseClientMessage(data, isBinary);
    switch (message.kind) {
      case 'input':
        if (!this.writer.write(message.data)) this.ws.pause();
        break;
      case 'resize':
        try {
          this.pty.resize(message.cols, message.rows);
        } catch (err) {
          this.options.log('resize_failed', { session: this.id, reason: err.message });
        }
        break;
      case 'pause':
      case 'resume':
        this.clientPaused = message.kind === 'pause';
        this.updateOutputFlow();
        break;
      default:
        break; // an unknown control message: reserved, never typed into the shell
    }
  }

  exit(code) {
    this.exited = true;
    this.options.log('session_exited', { session: this.id, code });
    // Queued after the output already sent, so the client sees all of it before the close.
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(CloseCode.Exited, `exited ${code}`);
    this.end('exited');
  }

  /** Ends the session once: stops input, hangs up on the shell and its jobs, kills the rest. */
  end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.writer?.dispose();
    if (this.pty === undefined) {
      this.options.onEnded(this);
      return;
    }
    const { pid } = this.pty;
    const found = signalSession(pid, this.id, 'SIGHUP');
    if (!this.exited) {
      try {
        this.pty.destroy(); // closes our side of the pty (the kernel hangs up the session too)
      } catch {
        // already closed
      }
    }
    this.options.log('session_ended', { session: this.id, reason, processes: found });
    this.killTimer = setTimeout(() => {
      signalSession(pid, this.id, 'SIGKILL');
      this.options.onEnded(this);
    }, KILL_GRACE_MS);
  }
}

module.exports = { TerminalSession, CloseCode };
