import { Backoff } from './backoff';
import { describeClose } from './close-codes';
import { readToken } from './token-store';
import type { ServerEvent } from './types';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

export interface EventsSocketHandlers {
  event(event: ServerEvent): void;
  /** The connection state changed; `detail` says why when it is not live. */
  state(state: LiveState, detail?: string): void;
  /** An attempt ended before the socket opened: the caller falls back to `GET /api/plugins`. */
  notOpened(): void;
  /** Closed with 4401 and no newer token stored or to be had: the session is over. */
  expired(): void;
  /** Closed with 4401: gets a newer token if it can (single sign-on); false when it cannot. */
  renew?(): Promise<boolean>;
}

const EVENTS_PATH = '/api/events';
/** An attempt that neither opens nor fails in this time is given up and retried. */
const OPEN_TIMEOUT_MS = 10_000;
/** The close code the console uses itself when it stops the socket. */
const NORMAL_CLOSURE = 1000;
const TOKEN_EXPIRED = 4401;

/**
 * `/api/events`: hello, a snapshot of the plugins, then changes and (admins) log lines. Reconnects
 * with jittered backoff until stopped; the token goes as the bearer subprotocol
 * (docs/plugin-contract.md §5), read afresh for each attempt.
 */
export class EventsSocket {
  private socket: WebSocket | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  /** Set after a failed attempt, until a socket opens: the indicator says reconnecting. */
  private retrying = false;
  private readonly onOnline = (): void => this.reconnectNow();

  public constructor(
    private readonly handlers: EventsSocketHandlers,
    private readonly backoff = new Backoff(),
  ) {}

  public start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  public stop(): void {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    clearTimeout(this.openTimer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(NORMAL_CLOSURE, 'signed out');
  }

  private connect(): void {
    this.retryTimer = undefined;
    const token = readToken();
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const protocols = token === null ? ['portico'] : ['portico', bearerProtocol(token)];
    let socket: WebSocket;
    try {
      socket = new WebSocket(`${scheme}://${location.host}${EVENTS_PATH}`, protocols);
    } catch {
      this.handlers.notOpened();
      this.scheduleRetry('The live connection could not be opened.');
      return;
    }
    this.socket = socket;
    let opened = false;
    this.handlers.state(this.retrying ? 'reconnecting' : 'connecting');
    this.openTimer = setTimeout(() => socket.close(), OPEN_TIMEOUT_MS);

    socket.addEventListener('open', () => {
      opened = true;
      this.retrying = false;
      clearTimeout(this.openTimer);
      this.handlers.state('live');
    });
    socket.addEventListener('message', (message: MessageEvent<unknown>) => {
      const event = parseEvent(message.data);
      if (event === null) return;
      if (event.type === 'hello') this.backoff.reset();
      this.handlers.event(event);
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(this.openTimer);
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      if (event.code === TOKEN_EXPIRED) {
        const now = readToken();
        if (now !== null && now !== token) {
          this.connect(); // a newer token is stored already
        } else if (this.handlers.renew !== undefined) {
          void this.handlers.renew().then((renewed) => {
            if (this.stopped || this.socket !== null) return;
            if (renewed) this.connect();
            else this.handlers.expired();
          });
        } else {
          this.handlers.expired();
        }
        return;
      }
      if (!opened) this.handlers.notOpened();
      this.scheduleRetry(
        opened
          ? describeClose(event.code, event.reason, 'The live connection')
          : 'The live connection could not be opened; the plugin list is refreshed while it retries.',
      );
    });
  }

  private scheduleRetry(detail: string): void {
    if (this.stopped) return;
    this.retrying = true;
    const delay = this.backoff.next();
    this.handlers.state('reconnecting', detail);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** The browser is back online: retry at once instead of waiting out the backoff. */
  private reconnectNow(): void {
    if (this.stopped || this.retryTimer === undefined) return;
    clearTimeout(this.retryTimer);
    this.backoff.reset();
    this.connect();
  }
}

/** docs/plugin-contract.md §5: `base64url.bearer.authorization.portico.<base64url(jwt)>`. */
export function bearerProtocol(token: string): string {
  const b64url = btoa(token).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `base64url.bearer.authorization.portico.${b64url}`;
}

function parseEvent(data: unknown): ServerEvent | null {
  if (typeof data !== 'string') return null;
  try {
    const parsed = JSON.parse(data) as { type?: unknown };
    return typeof parsed === 'object' && parsed !== null && typeof parsed.type === 'string'
      ? (parsed as ServerEvent)
      : null;
  } catch {
    return null;
  }
}
