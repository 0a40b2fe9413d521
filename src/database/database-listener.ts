import { Logger } from '@nestjs/common';
import type { Client, ClientConfig } from 'pg';

/** application_name of the listener's connection: what an operator sees in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'portico-listener';

/** First and longest wait before the listener connects again after losing its connection. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
/** Bound on the listener's connect and each of its queries. */
const LISTENER_TIMEOUT_MS = 5_000;
/** How often the listener checks that its connection still answers. */
const LISTENER_PING_MS = 15_000;

/** Channel names are put into LISTEN statements: only plain identifiers are accepted. */
const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]*$/;

type Callback = () => void;

/**
 * One replica's LISTEN connection, shared by everything that follows changes in the database
 * (plugin state, secrets). It is a connection of its own, not a pooled one: a pooled connection
 * is handed to queries and released, and would miss notifications meanwhile.
 *
 * `subscribe(channel, onChange)` calls `onChange` for every notification on the channel, and
 * also each time the connection is (re)established, because NOTIFY is fire-and-forget: a
 * change committed while no one listened is only found by reloading everything then. The
 * connection is lost → reconnect with jittered backoff (250 ms to 10 s); the outage is logged
 * once (`state_database_unavailable`), and its end (`state_database_reconnected`). A connection
 * that died silently (a half-open TCP connection after a failover) is found by a periodic query.
 * The connection is open while there is at least one subscription.
 */
export class DatabaseListener {
  private readonly logger = new Logger('DatabaseListener');
  private readonly subscriptions = new Map<string, Set<Callback>>();
  /** The connection of the running loop once it listens; undefined otherwise. */
  private listening: Client | undefined;
  private loop: { stop(): void } | undefined;
  private down = false;

  public constructor(
    /** The pool's settings, for a connection of its own. */
    private readonly clientConfig: ClientConfig,
    /** `host:port/database`, for the logs; never the credentials. */
    private readonly location: string,
  ) {}

  /** Follows `channel`; returns the function that stops it (idempotent). */
  public subscribe(channel: string, onChange: Callback): () => void {
    if (!CHANNEL_PATTERN.test(channel)) throw new RangeError(`invalid channel name ${channel}`);
    let callbacks = this.subscriptions.get(channel);
    const isNewChannel = callbacks === undefined;
    callbacks ??= new Set();
    this.subscriptions.set(channel, callbacks);
    // A wrapper per subscription: the same function subscribed twice is two subscriptions.
    const callback: Callback = () => onChange();
    callbacks.add(callback);
    if (this.loop === undefined) this.loop = this.start();
    else if (this.listening !== undefined)
      this.addToConnection(this.listening, channel, callback, isNewChannel);
    return () => {
      const set = this.subscriptions.get(channel);
      if (set === undefined || !set.delete(callback)) return;
      if (set.size === 0) this.subscriptions.delete(channel);
      if (this.subscriptions.size === 0) this.stop();
    };
  }

  /** Closes the connection and ends every subscription. */
  public stop(): void {
    this.subscriptions.clear();
    this.loop?.stop();
    this.loop = undefined;
    this.listening = undefined;
  }

  /** A channel subscribed while connected: LISTEN on it now, then its first (re)load. */
  private addToConnection(
    client: Client,
    channel: string,
    callback: Callback,
    isNewChannel: boolean,
  ): void {
    if (!isNewChannel) {
      callback();
      return;
    }
    client.query(`LISTEN ${channel}`).then(callback, () => {
      // The connection is going away: the loop reconnects, listens and calls every callback.
    });
  }

  private start(): { stop(): void } {
    let stopped = false;
    let current: Client | undefined;
    let wake: (() => void) | undefined;
    const run = async (): Promise<void> => {
      // Loaded on first use, like the pool (database.module.ts).
      const { Client: PgClient } = await import('pg');
      let delay = RECONNECT_MIN_MS;
      while (!stopped) {
        const client = new PgClient({
          // A connect or query that never answers (a server going down or coming up, a network
          // that drops packets) must end the attempt, not stall the listener for good.
          connectionTimeoutMillis: LISTENER_TIMEOUT_MS,
          query_timeout: LISTENER_TIMEOUT_MS,
          keepAlive: true,
          ...this.clientConfig,
          application_name: LISTENER_APPLICATION_NAME,
        });
        current = client;
        let ping: NodeJS.Timeout | undefined;
        const lost = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
          wake = resolve;
        });
        try {
          await client.connect();
          client.on('notification', (msg) => {
            for (const callback of [...(this.subscriptions.get(msg.channel) ?? [])]) callback();
          });
          for (const channel of [...this.subscriptions.keys()])
            await client.query(`LISTEN ${channel}`);
          if (stopped) break;
          delay = RECONNECT_MIN_MS;
          if (this.down)
            this.logger.log({ event: 'state_database_reconnected', database: this.location });
          this.down = false;
          this.listening = client;
          // Whatever was committed while no one listened: every subscriber reloads.
          for (const callbacks of [...this.subscriptions.values()])
            for (const callback of [...callbacks]) callback();
          ping = setInterval(() => {
            client.query('SELECT 1').catch(() => client.end().catch(() => undefined));
          }, LISTENER_PING_MS);
          ping.unref();
          await lost;
        } catch (err) {
          // A connect cut short by the host's own shutdown is no outage.
          if (!this.down && !stopped)
            this.logger.error({
              event: 'state_database_unavailable',
              database: this.location,
              reason: (err as Error).message,
            });
          if (!stopped) this.down = true;
        } finally {
          clearInterval(ping);
          if (this.listening === client) this.listening = undefined;
          client.removeAllListeners('notification');
          await endWithin(client, LISTENER_TIMEOUT_MS);
        }
        if (stopped) break;
        if (!this.down) {
          this.down = true;
          this.logger.error({ event: 'state_database_unavailable', database: this.location });
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay * (0.5 + Math.random()));
          timer.unref();
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    };
    // run() never rejects: every failure inside is caught, logged and retried.
    void run();
    return {
      stop: () => {
        stopped = true;
        wake?.();
        void current?.end().catch(() => undefined);
      },
    };
  }
}

/**
 * Closes a client, but waits at most `ms`: ending a connection whose server vanished mid-way can
 * wait for an answer that never comes, and the listener must go on to its next attempt.
 */
function endWithin(client: Client, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    client
      .end()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        resolve();
      });
  });
}
