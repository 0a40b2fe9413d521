import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { Logger, Provider } from '@nestjs/common';

import { writeFileAtomic } from '../../common/atomic-file';
import { PorticoConfig } from '../../config/portico-config';
import { Database, DATABASE } from '../../database/database.module';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import type { PluginName } from '../shared/plugin.types';
import { DeclarativePluginStateStore } from './declarative-state.store';
import { PLUGIN_STATE_FILE } from './manifest.constants';
import { PgPluginStateStore } from './pg-state.store';
import type { RestartPolicyDto } from './restart-policy.dto';

/** What is remembered about a plugin across restarts and rescans. */
export interface PluginState {
  readonly enabled: boolean;
  /** Roles allowed to use the plugin (any one suffices); empty or absent = every user. */
  readonly roles?: readonly string[];
  /** Overrides of the manifest's restart policy (PLUGINS_CONFIG only; the API cannot set them). */
  readonly restart?: Readonly<RestartPolicyDto>;
}

interface PluginStateFile {
  plugins: Record<PluginName, PluginState>;
}

/**
 * Where enable flags and access roles are kept across restarts and rescans: the registry's only
 * way to the disk, injected under PLUGIN_STATE_STORE so tests (and other stores) can replace it.
 */
export interface PluginStateStore {
  /** The stored states; empty when nothing was stored yet. */
  load(): Promise<Map<PluginName, PluginState>>;
  /**
   * Replaces every stored state with `states`. A store that is not written through the API
   * (PLUGINS_CONFIG) throws PluginException CONFLICT naming where the state is managed.
   */
  save(states: ReadonlyMap<PluginName, PluginState>): Promise<void>;
  /**
   * Changes only the fields in `patch` of one plugin, atomically where the state is kept, and
   * returns its whole new state: two writers changing different fields of the same plugin (two
   * replicas) then both count. Stores without it get `save` of the whole map.
   */
  patch?(name: PluginName, patch: PluginStatePatch): Promise<PluginState>;
  /**
   * Calls `onChange` whenever the states changed from outside this process (a watched file,
   * another replica); `load` then returns the new ones. Returns the function that stops it.
   * Absent on stores that only this process writes.
   */
  watch?(onChange: () => void): () => void;
  /** Where the states come from, for `/readyz` details and the logs. */
  describe?(): PluginStateSource;
}

/** The fields of a PluginState the management API changes. */
export type PluginStatePatch = Partial<Pick<PluginState, 'enabled' | 'roles'>>;

/** What `/readyz` shows about the source of plugin state. */
export interface PluginStateSource {
  readonly source: 'DATA_DIR' | 'PLUGINS_CONFIG' | 'DATABASE';
  /** DATA_DIR and PLUGINS_CONFIG: the file. */
  readonly file?: string;
  /** DATABASE: host, port and database name (never the credentials). */
  readonly database?: string;
  /** DATABASE: the highest generation applied. */
  readonly appliedGeneration?: number;
  /** PLUGINS_CONFIG: `portico_config_generation` of the config in force. */
  readonly generation?: number;
  /** PLUGINS_CONFIG: why the file's current content is not applied (the last good one is). */
  readonly lastError?: string;
  /** PLUGINS_CONFIG: names it lists that no plugin under PLUGINS_DIR has (a typo?). */
  readonly notInstalled?: readonly string[];
}

export const PLUGIN_STATE_STORE = Symbol('PLUGIN_STATE_STORE');

/**
 * The embedded store: `DATA_DIR/plugins-state.json`. Writes are atomic (temp file, fsync,
 * rename), so a crash leaves either the old or the new file, never half of one.
 */
export class FilePluginStateStore implements PluginStateStore {
  private readonly logger = new Logger(FilePluginStateStore.name);

  public constructor(private readonly file: string) {}

  public describe(): PluginStateSource {
    return { source: 'DATA_DIR', file: this.file };
  }

  /** The stored states; empty when the file does not exist or cannot be understood. */
  public async load(): Promise<Map<PluginName, PluginState>> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    const states = new Map<PluginName, PluginState>();
    try {
      const parsed = JSON.parse(text) as Partial<PluginStateFile> | null;
      // JSON.parse makes `__proto__` an own key, so Object.entries sees it like any other name.
      for (const [name, state] of Object.entries(parsed?.plugins ?? {})) {
        if (typeof state?.enabled !== 'boolean') continue;
        const roles = Array.isArray(state.roles)
          ? state.roles.filter((r): r is string => typeof r === 'string')
          : [];
        states.set(
          name,
          roles.length > 0 ? { enabled: state.enabled, roles } : { enabled: state.enabled },
        );
      }
    } catch (err) {
      // Every plugin falls back to its default; the next write replaces the file.
      this.logger.error({
        event: 'plugin_state_unreadable',
        file: this.file,
        reason: (err as Error).message,
      });
    }
    return states;
  }

  public async save(states: ReadonlyMap<PluginName, PluginState>): Promise<void> {
    // A plugin may be called `__proto__`: assigning that key to a plain object would set its
    // prototype instead of adding an entry, so the file's object is built from entries.
    const body: PluginStateFile = {
      plugins: Object.fromEntries(
        [...states.keys()].sort().map((name) => {
          const state = states.get(name);
          return [
            name,
            {
              enabled: state?.enabled ?? true,
              ...(state?.roles !== undefined && state.roles.length > 0
                ? { roles: state.roles }
                : {}),
            },
          ];
        }),
      ),
    };
    await mkdir(dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, Buffer.from(JSON.stringify(body, null, 2) + '\n'));
  }
}

/**
 * PLUGINS_CONFIG set: the declared file, the same for every replica (read and validated here,
 * so a bad file fails the startup). DATABASE_URL set: PostgreSQL, shared by every replica and
 * written through the API. Otherwise the embedded store in DATA_DIR, for one replica.
 */
export const pluginStateStoreProvider: Provider = {
  provide: PLUGIN_STATE_STORE,
  inject: [PorticoConfig, PorticoMetrics, DATABASE],
  useFactory: (
    config: PorticoConfig,
    metrics: PorticoMetrics,
    database: Database | null,
  ): Promise<PluginStateStore> => {
    if (config.PLUGINS_CONFIG !== undefined)
      return DeclarativePluginStateStore.open(
        config.PLUGINS_CONFIG,
        config.PLUGINS_CONFIG_POLL_MS,
        metrics,
      );
    if (database !== null)
      return Promise.resolve(
        new PgPluginStateStore(database.pool, database.location, database.listener, metrics),
      );
    return Promise.resolve(new FilePluginStateStore(join(config.DATA_DIR, PLUGIN_STATE_FILE)));
  },
};
