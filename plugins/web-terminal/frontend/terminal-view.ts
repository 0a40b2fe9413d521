import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';

import { Backoff } from './backoff';
import { closeAction } from './close-policy';
import {
  ControlMessage,
  decodeServerMessage,
  encodeBinaryInput,
  encodeControl,
  encodeInput,
} from './protocol';
import { readToken, subprotocols, terminalUrl } from './socket-url';
import { acquireStyles, releaseStyles } from './styles';
import { themeFor } from './themes';
import type { ConnectionState, PluginApi, PluginContext } from './types';

/**
 * Output xterm has not parsed yet above which the server is asked to stop reading the shell
 * (a browser WebSocket cannot be paused), and below which it is asked to go on.
 */
const OUTPUT_HIGH_WATER = 1024 * 1024;
const OUTPUT_LOW_WATER = 128 * 1024;
/**
 * Input is sent in messages of at most this size: a paste of any length then stays under
 * Portico's `maxMessageBytes` (16 MiB by default; larger messages close the socket with 1009).
 * The server writes bytes as they come, so a cut inside a UTF-8 character is harmless.
 */
const MAX_INPUT_MESSAGE_BYTES = 64 * 1024;
/** Shown when the terminal reconnected to a new shell instead of the one the user had. */
const NEW_SESSION_NOTICE = '[new session: the previous one ended]';

/** What a test (or a curious developer) can read from a mounted terminal. */
export interface TerminalHandle {
  readonly container: HTMLElement;
  readonly terminal: Terminal;
  readonly state: ConnectionState;
  /** The whole buffer as text: one line per terminal row, wrapped rows joined. */
  text(): string;
}

declare global {
  interface Window {
    /** Every mounted terminal, in mount order (plugins/web-terminal/README.md, "Testing"). */
    __porticoTerminals?: TerminalHandle[];
  }
}

/** Flow-control bookkeeping for one connection. */
interface OutputFlow {
  pending: number;
  paused: boolean;
}

/** Most keystrokes held while the terminal re-attaches (a paste beyond it is dropped). */
const MAX_HELD_INPUT = 64 * 1024;

/** One terminal in one container: xterm, its fit to the container, and its connection. */
export class TerminalView {
  public readonly terminal: Terminal;
  private readonly fitAddon = new FitAddon();
  private readonly element: HTMLDivElement;
  private readonly backoff = new Backoff();
  private readonly cleanups: (() => void)[] = [];
  private readonly handle: TerminalHandle;
  private socket: WebSocket | undefined;
  private connectionState: ConnectionState = 'closed';
  /** After an exit or an unexplained close: Enter starts a new session, other keys do nothing. */
  private waitingForEnter = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The server's id of the session this terminal shows: the next connection asks to re-attach
   * to it, so a token refresh or a network blip keeps the shell. Undefined once it ended.
   */
  private sessionId: string | undefined;
  /** The previous session ended without the server being able to say so (a plugin restart). */
  private announceNewSession = false;
  /** The token the current connection was opened with (to tell a refreshed one apart). */
  private tokenUsed: string | null = null;
  /**
   * Keystrokes typed while re-attaching to the session the user sees (a token refresh, a
   * blip): sent once the server confirms it is the same shell, dropped if it is a new one.
   */
  private heldInput: Uint8Array[] = [];
  private heldBytes = 0;
  private fitFrame: number | undefined;
  private disposed = false;

  public constructor(
    private readonly container: HTMLElement,
    private readonly api: PluginApi,
  ) {
    const document = container.ownerDocument;
    acquireStyles(document);
    this.element = document.createElement('div');
    this.element.className = 'portico-terminal';
    container.appendChild(this.element);

    this.terminal = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 13,
      scrollback: 5000,
    });
    this.applyTheme(api.context);
    this.terminal.loadAddon(this.fitAddon);
    this.terminal.open(this.element);
    this.fit();

    const subscriptions = [
      this.terminal.onData((data) => this.input(data)),
      this.terminal.onBinary((data) => this.send(encodeBinaryInput(data))),
      this.terminal.onResize(({ cols, rows }) => this.sendControl({ type: 'resize', cols, rows })),
    ];
    this.cleanups.push(() => subscriptions.forEach((s) => s.dispose()));

    const observer = new ResizeObserver(() => this.scheduleFit());
    observer.observe(container);
    this.cleanups.push(() => observer.disconnect());

    // The listener's argument is not trusted to be the whole context: the getter is.
    const unsubscribe = api.onContextChange(() => this.applyTheme(this.api.context));
    this.cleanups.push(unsubscribe);

    // The session id lives in this page only: a page being unloaded (closed, reloaded, left)
    // can never re-attach, so its shell ends now rather than after the grace period. Best
    // effort: the browser sends what it can before it closes the socket. A page kept in the
    // back/forward cache (`persisted`) may come back and re-attach.
    const onPageHide = (event: PageTransitionEvent): void => {
      if (!event.persisted) this.sendControl({ type: 'end' });
    };
    window.addEventListener('pagehide', onPageHide);
    this.cleanups.push(() => window.removeEventListener('pagehide', onPageHide));

    const currentState = (): ConnectionState => this.connectionState;
    this.handle = {
      container,
      terminal: this.terminal,
      get state() {
        return currentState();
      },
      text: () => this.text(),
    };
    const registry = (window.__porticoTerminals ??= []);
    registry.push(this.handle);

    this.connect();
    this.terminal.focus();
  }

  /** Ends the session and its shell, and removes everything mount added. */
  public dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.retryTimer);
    if (this.fitFrame !== undefined) cancelAnimationFrame(this.fitFrame);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      // The terminal is gone for good: the shell must not wait for a re-attach. A socket still
      // connecting says so once open (closing it now would leave the shell detached).
      const end = (): void => {
        socket.send(encodeControl({ type: 'end' }));
        socket.close(1000, 'unmounted');
      };
      if (socket.readyState === WebSocket.CONNECTING) socket.onopen = end;
      else if (socket.readyState === WebSocket.OPEN) end();
    }
    this.terminal.dispose();
    this.element.remove();
    releaseStyles();
    const registry = window.__porticoTerminals;
    if (registry !== undefined) registry.splice(registry.indexOf(this.handle) >>> 0, 1);
    delete this.container.dataset.terminalState;
    delete this.container.dataset.terminalCloseCode;
  }

  private connect(): void {
    if (this.disposed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.waitingForEnter = false;
    const size = { cols: this.terminal.cols, rows: this.terminal.rows };
    const projectPath = this.api.context.project?.path;
    let socket: WebSocket;
    this.tokenUsed = readToken();
    try {
      socket = new WebSocket(
        terminalUrl(window.location, size, projectPath, this.sessionId),
        subprotocols(this.tokenUsed),
      );
    } catch {
      this.setState('closed');
      this.notice('[The terminal address is invalid.]');
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.setState('connecting');
    const flow: OutputFlow = { pending: 0, paused: false };
    let answered = false;

    socket.onopen = () => {
      this.setState('open');
      // The container may have changed size while the handshake ran.
      this.sendControl({ type: 'resize', cols: this.terminal.cols, rows: this.terminal.rows });
    };
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (!answered) {
        answered = true;
        this.backoff.reset(); // the shell is there: the next trouble starts from a short delay
      }
      if (typeof event.data === 'string') {
        // Output always comes as binary frames: a text frame is a control message.
        this.control(event.data);
        return;
      }
      this.output(new Uint8Array(event.data), flow);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = undefined;
      this.closed(event.code, event.reason);
    };
  }

  /**
   * A control message from the server. On a re-attach the screen stays as it is: the output
   * printed meanwhile follows, then live output.
   */
  private control(text: string): void {
    const message = decodeServerMessage(text);
    if (message === undefined) return;
    switch (message.type) {
      case 'session-new':
        this.announceNewSession = true;
        break;
      case 'session':
        this.sessionId = message.id;
        if (this.announceNewSession && !message.resumed) this.notice(NEW_SESSION_NOTICE);
        this.announceNewSession = false;
        this.releaseHeldInput(message.resumed);
        break;
    }
  }

  private output(bytes: Uint8Array, flow: OutputFlow): void {
    flow.pending += bytes.length;
    this.terminal.write(bytes, () => {
      flow.pending -= bytes.length;
      if (flow.paused && flow.pending <= OUTPUT_LOW_WATER) {
        flow.paused = false;
        this.sendControl({ type: 'resume' });
      }
    });
    if (!flow.paused && flow.pending > OUTPUT_HIGH_WATER) {
      flow.paused = true;
      this.sendControl({ type: 'pause' });
    }
  }

  private closed(code: number, reason: string): void {
    this.setState('closed');
    this.container.dataset.terminalCloseCode = String(code);
    const action = closeAction(code, reason);
    if (!action.sessionMayLive && this.sessionId !== undefined) {
      this.sessionId = undefined;
      // A restart ends every shell without a word from the server: the terminal says it.
      this.announceNewSession = action.kind === 'retry';
    }
    switch (action.kind) {
      case 'exited':
        this.notice('[process exited]');
        this.notice('[press Enter to start a new session]');
        this.waitingForEnter = true;
        break;
      case 'retry':
        this.notice('[reconnecting…]');
        this.reconnectLater();
        break;
      case 'reauthenticate': {
        // Portico closes a socket when the token it was opened with expires. The console has
        // usually stored a fresh one by then: reconnect at once, without a word, and the shell
        // is re-attached. Otherwise wait for it (connect() reads the token again).
        const token = readToken();
        if (token !== null && token !== this.tokenUsed) this.connect();
        else {
          this.notice('[sign-in expired, reconnecting…]');
          this.reconnectLater();
        }
        break;
      }
      case 'final':
        this.notice(`[${action.message}]`);
        break;
      case 'manual':
        this.notice(`[${action.message}]`);
        this.notice('[press Enter to reconnect]');
        this.waitingForEnter = true;
        break;
    }
  }

  private reconnectLater(): void {
    this.retryTimer = setTimeout(() => this.connect(), this.backoff.next());
  }

  private input(data: string): void {
    if (this.waitingForEnter) {
      if (data.includes('\r')) this.connect();
      return;
    }
    this.send(encodeInput(data));
  }

  /**
   * Input while no session is open is dropped (it would reach a shell the user has not seen),
   * except while re-attaching to the one they see: then it is held (up to 64 KiB) and sent, in
   * order, once the server confirms the same shell.
   */
  private send(bytes: Uint8Array): void {
    const socket = this.socket;
    if (socket?.readyState === WebSocket.OPEN && this.heldInput.length === 0) {
      this.sendNow(socket, bytes);
      return;
    }
    const reattaching =
      this.sessionId !== undefined && !this.waitingForEnter && this.connectionState !== 'closed';
    const waitingToReattach = this.sessionId !== undefined && this.retryTimer !== undefined;
    if ((reattaching || waitingToReattach) && this.heldBytes + bytes.length <= MAX_HELD_INPUT) {
      this.heldInput.push(bytes);
      this.heldBytes += bytes.length;
    }
  }

  private sendNow(socket: WebSocket, bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; at += MAX_INPUT_MESSAGE_BYTES) {
      socket.send(bytes.subarray(at, at + MAX_INPUT_MESSAGE_BYTES));
    }
  }

  /** After a (re-)attach: held keystrokes go to the shell if it is the same one. */
  private releaseHeldInput(sameShell: boolean): void {
    const held = this.heldInput;
    this.heldInput = [];
    this.heldBytes = 0;
    const socket = this.socket;
    if (!sameShell || socket?.readyState !== WebSocket.OPEN) return;
    for (const bytes of held) this.sendNow(socket, bytes);
  }

  private sendControl(message: ControlMessage): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeControl(message));
  }

  private notice(text: string): void {
    this.terminal.write(`\r\n${text}\r\n`);
  }

  private setState(state: ConnectionState): void {
    this.connectionState = state;
    this.container.dataset.terminalState = state;
  }

  private applyTheme(context: PluginContext | undefined): void {
    const theme = themeFor(context?.theme);
    this.terminal.options.theme = theme;
    this.element.style.background = theme.background ?? '';
  }

  private scheduleFit(): void {
    if (this.fitFrame !== undefined || this.disposed) return;
    this.fitFrame = requestAnimationFrame(() => {
      this.fitFrame = undefined;
      this.fit();
    });
  }

  /** Fits the terminal to its element; a hidden container (no size) keeps the last size. */
  private fit(): void {
    try {
      this.fitAddon.fit();
    } catch {
      // not rendered yet: the next resize fits it
    }
  }

  private text(): string {
    const buffer = this.terminal.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < buffer.length; y++) {
      const line = buffer.getLine(y);
      if (line === undefined) continue;
      const text = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
      else lines.push(text);
    }
    return lines.join('\n').trimEnd();
  }
}
