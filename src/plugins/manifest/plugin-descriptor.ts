import type { PluginName } from '../shared/plugin.types';
import type { ManifestDto } from './manifest.dto';
import type { RestartPolicyDto } from './restart-policy.dto';

/** One plugin folder as discovered on disk. */
export interface PluginDescriptor {
  /** Manifest `name`; for an invalid manifest without a usable name, the folder name. */
  readonly name: PluginName;
  /** Folder name under PLUGINS_DIR. */
  readonly folder: string;
  /** Absolute real path of the plugin folder (symlinks resolved). */
  readonly dir: string;
  /** The validated manifest; absent when the manifest is invalid. */
  readonly manifest?: ManifestDto;
  /** Why the manifest was rejected (one line, for the API and the log). */
  readonly invalidReason?: string;
  /** Persisted enable flag (default true). */
  readonly enabled: boolean;
  /** Persisted roles allowed to use the plugin, any one suffices; empty = every user. */
  readonly accessRoles: readonly string[];
  /** PLUGINS_CONFIG's overrides of the manifest's restart policy; absent = the manifest's. */
  readonly restartOverrides?: Readonly<RestartPolicyDto>;
}

/** What a change of the stored states (PLUGINS_CONFIG re-read) changed for one plugin. */
export interface PluginStateChange {
  readonly name: PluginName;
  readonly enabled: boolean;
  readonly access: boolean;
  readonly restart: boolean;
}

/** Result of a rescan: names of plugins that appeared, disappeared or whose manifest changed. */
export interface RescanResult {
  readonly added: PluginName[];
  readonly removed: PluginName[];
  readonly changed: PluginName[];
}
