import { Logger } from '@nestjs/common';
import { Client, ClientConfig, Pool, PoolClient } from 'pg';

import { PorticoMetrics } from '../../metrics/portico-metrics';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import type { PluginName } from '../shared/plugin.types';
import type {
  PluginState,
  PluginStatePatch,
  PluginStateSource,
  PluginStateStore,
} from './plugin-state.store';

/** The channel every committed change is announced on (payload: `{name, generation}`). */
export const STATE_CHANNEL = 'portico_state';

/** application_name of the listener's connection: what an operator sees in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'portico-listener';

/** First and longest wait before the listener connects again after losing its connection. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
/** Bound on the listener's connect and each of its queries. */
const LISTENER_TIMEOUT_MS = 5_000;
/** How often the listener checks that its connection still answers. */
const LISTENER_PING_MS = 15_000;

interface StateRow {
  name: string;
  enabled: boolean;
  roles: string[];
  generation: string;
}

/**
 * Plugin state (enable flags, access roles) in PostgreSQL, shared by every replica. Each write
 * changes only the fields it names, in one statement, takes the next number of a sequence as
 * its generation and is announced with `pg_notify` in the same transaction (delivered on
 * commit). Every replica listens on a connection of its own (a pooled one could be handed to a
 * query and miss notifications) and reloads on each one. NOTIFY is fire-and-forget, so after the
 * listener (re)connects the whole state is reloaded too: a change committed while it was cut off
 * is picked up then. Reads keep the last state loaded when the database goes away; writes get
 * 503 (STATE_UNAVAILABLE); the outage is logged once, and its end.
 */
export class PgPluginStateStore implements PluginStateStore {
  private readonly logger = new Logger('PluginStateDatabase');
  private applied = 0;
  private listenerDown = false;

  public constructor(
    private readonly pool: Pool,
    /** For the listener's own connection (the pool's settings, without the pool). */
    private readonly listenerConfig: ClientConfig,
    /** What `/readyz` shows: host, port and database, never the credentials. */
    private readonly location: string,
    private readonly metrics?: PorticoMetrics,
  ) {}

  public async load(): Promise<Map<PluginName, PluginState>> {
    const result = await this.pool.query<StateRow>(
      'SELECT name, enabled, roles, generation FROM portico_plugin_state',
    );
    const states = new Map<PluginName, PluginState>();
    let newest = 0;
    for (const row of result.rows) {
      states.set(row.name, toState(row));
      newest = Math.max(newest, Number(row.generation));
    }
    this.applied = Math.max(this.applied, newest);
    this.metrics?.stateGeneration.set(this.applied);
    return states;
  }

  /** Writes every given state (the registry uses `patch`; this is the interface's fallback). */
  public async save(states: ReadonlyMap<PluginName, PluginState>): Promise<void> {
    await this.transaction(async (client) => {
      for (const [name, state] of states) await upsert(client, name, state);
    });
  }

  public patch(name: PluginName, patch: PluginStatePatch): Promise<PluginState> {
    return this.transaction((client) => upsert(client, name, patch));
  }

  public watch(onChange: () => void): () => void {
    let stopped = false;
    let current: Client | undefined;
    let wake: (() => void) | undefined;
    const loop = async (): Promise<void> => {
      let delay = RECONNECT_MIN_MS;
      while (!stopped) {
        const client = new Client({
          // A connect or query that never answers (a server going down or coming up, a network
          // that drops packets) must end the attempt, not stall the listener for good.
          connectionTimeoutMillis: LISTENER_TIMEOUT_MS,
          query_timeout: LISTENER_TIMEOUT_MS,
          keepAlive: true,
          ...this.listenerConfig,
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
          client.on('notification', () => onChange());
          await client.query(`LISTEN ${STATE_CHANNEL}`);
          delay = RECONNECT_MIN_MS;
          if (this.listenerDown)
            this.logger.log({ event: 'state_database_reconnected', database: this.location });
          this.listenerDown = false;
          // Whatever was committed while no one listened: reload everything, compare.
          onChange();
          // A connection that died silently (a half-open TCP connection after a failover or a
          // partition) delivers no notification and no error: a periodic query finds it out.
          ping = setInterval(() => {
            client.query('SELECT 1').catch(() => client.end().catch(() => undefined));
          }, LISTENER_PING_MS);
          ping.unref();
          await lost;
        } catch (err) {
          // A connect cut short by the host's own shutdown is no outage.
          if (!this.listenerDown && !stopped)
            this.logger.error({
              event: 'state_database_unavailable',
              database: this.location,
              reason: (err as Error).message,
            });
          this.listenerDown = true;
        } finally {
          clearInterval(ping);
          client.removeAllListeners('notification');
          await endWithin(client, LISTENER_TIMEOUT_MS);
        }
        if (stopped) break;
        if (!this.listenerDown) {
          this.listenerDown = true;
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
    // loop() never rejects: every failure inside is caught, logged and retried.
    void loop();
    return () => {
      stopped = true;
      wake?.();
      void current?.end().catch(() => undefined);
    };
  }

  public describe(): PluginStateSource {
    return { source: 'DATABASE', database: this.location, appliedGeneration: this.applied };
  }

  /** Runs `work` in a transaction; a database that cannot be reached is 503. */
  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw isUnavailable(err) ? unavailable(err) : err;
    }
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw isUnavailable(err) ? unavailable(err) : err;
    } finally {
      client.release();
    }
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

/** Changes the given fields of one plugin's row (creating it with defaults) and announces it. */
async function upsert(
  client: PoolClient,
  name: PluginName,
  patch: PluginStatePatch,
): Promise<PluginState> {
  const result = await client.query<StateRow>(
    `INSERT INTO portico_plugin_state (name, enabled, roles, generation)
       VALUES ($1, COALESCE($2, true), COALESCE($3::text[], '{}'), nextval('portico_state_generation'))
     ON CONFLICT (name) DO UPDATE SET
       enabled = COALESCE($2, portico_plugin_state.enabled),
       roles = COALESCE($3::text[], portico_plugin_state.roles),
       generation = EXCLUDED.generation,
       updated_at = now()
     RETURNING name, enabled, roles, generation`,
    [name, patch.enabled ?? null, patch.roles === undefined ? null : [...patch.roles]],
  );
  const row = result.rows[0];
  await client.query('SELECT pg_notify($1, $2)', [
    STATE_CHANNEL,
    JSON.stringify({ name, generation: Number(row.generation) }),
  ]);
  return toState(row);
}

function toState(row: StateRow): PluginState {
  return row.roles.length > 0
    ? { enabled: row.enabled, roles: row.roles }
    : { enabled: row.enabled };
}

/**
 * The database cannot be reached or went away (connection refused or reset, SQLSTATE class 08
 * "connection exception", 57P "operator intervention" such as a shutdown), as opposed to an
 * error in what was asked, which stays a 500.
 */
function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return true;
  return /^(08|57P)/.test(code) || /^E[A-Z]+$/.test(code);
}

function unavailable(err: unknown): PluginException {
  return new PluginException(
    PluginExceptionCode.STATE_UNAVAILABLE,
    `plugin state cannot be changed now: the database is unavailable (${(err as Error).message})`,
  );
}
