import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { Logger, Provider } from '@nestjs/common';

import { writeFileAtomic } from '../../common/atomic-file';
import { PorticoConfig } from '../../config/portico-config';
import type { PluginName } from '../shared/plugin.types';
import { PLUGIN_STATE_FILE } from './manifest.constants';

/** What is remembered about a plugin across restarts and rescans. */
export interface PluginState {
  readonly enabled: boolean;
  /** Roles allowed to use the plugin (any one suffices); empty or absent = every user. */
  readonly roles?: readonly string[];
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
  /** Replaces every stored state with `states`. */
  save(states: ReadonlyMap<PluginName, PluginState>): Promise<void>;
}

export const PLUGIN_STATE_STORE = Symbol('PLUGIN_STATE_STORE');

/**
 * The embedded store: `DATA_DIR/plugins-state.json`. Writes are atomic (temp file, fsync,
 * rename), so a crash leaves either the old or the new file, never half of one.
 */
export class FilePluginStateStore implements PluginStateStore {
  private readonly logger = new Logger(FilePluginStateStore.name);

  public constructor(private readonly file: string) {}

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

export const pluginStateStoreProvider: Provider = {
  provide: PLUGIN_STATE_STORE,
  inject: [PorticoConfig],
  useFactory: (config: PorticoConfig): PluginStateStore =>
    new FilePluginStateStore(join(config.DATA_DIR, PLUGIN_STATE_FILE)),
};
