import type { Pool, PoolClient } from 'pg';

import type { DatabaseListener } from '../../database/database-listener';
import { inTransaction } from '../../database/transaction';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import type { PluginName } from '../shared/plugin.types';
import type {
  PluginState,
  PluginStatePatch,
  PluginStateSource,
  PluginStateStore,
} from './plugin-state.store';

/** The channel every committed change is announced on (payload: `{name, generation}`). */
export const STATE_CHANNEL = 'portico_state';

const PLUGIN_STATE = 'plugin state';

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
  private applied = 0;

  public constructor(
    private readonly pool: Pool,
    /** What `/readyz` shows: host, port and database, never the credentials. */
    private readonly location: string,
    /** The replica's LISTEN connection; without it (a one-shot command) `watch` does nothing. */
    private readonly listener?: DatabaseListener,
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
    await inTransaction(this.pool, PLUGIN_STATE, async (client) => {
      for (const [name, state] of states) await upsert(client, name, state);
    });
  }

  public patch(name: PluginName, patch: PluginStatePatch): Promise<PluginState> {
    return inTransaction(this.pool, PLUGIN_STATE, (client) => upsert(client, name, patch));
  }

  public watch(onChange: () => void): () => void {
    return this.listener?.subscribe(STATE_CHANNEL, onChange) ?? (() => undefined);
  }

  public describe(): PluginStateSource {
    return { source: 'DATABASE', database: this.location, appliedGeneration: this.applied };
  }
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
