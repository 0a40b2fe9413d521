/** File name of a plugin's manifest inside its folder. */
export const MANIFEST_FILE = 'manifest.json';

/** Manifests larger than this are rejected unread. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;

/** File in DATA_DIR holding the persisted enable flags. */
export const PLUGIN_STATE_FILE = 'plugins-state.json';

export const PLUGIN_NAME_MAX_LENGTH = 128;

/** Longest `entry`/`server` path accepted. */
export const PLUGIN_PATH_MAX_LENGTH = 1024;

export const SECRET_KEY_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Variables Portico sets itself or that would change how the plugin's process runs. */
export const RESERVED_SECRET_KEYS: readonly string[] = ['PATH', 'HOME'];
export const RESERVED_SECRET_KEY_PREFIXES: readonly string[] = [
  'NODE_',
  'PLUGIN_',
  'LD_',
  'PORTICO_',
];

export const MAX_SECRETS = 100;

export const READY_TIMEOUT_MS_MIN = 100;
export const READY_TIMEOUT_MS_MAX = 300_000;

export const MAX_MESSAGE_BYTES_MIN = 1;
export const MAX_MESSAGE_BYTES_MAX = 1024 * 1024 * 1024;

export const MAX_FAILED_STARTS_MIN = 1;
export const MAX_FAILED_STARTS_MAX = 100;

/** Bounds for every restart-policy duration (backoffs, healthy-after). */
export const RESTART_MS_MIN = 10;
export const RESTART_MS_MAX = 3_600_000;

export const PLUGIN_UI_TYPES = ['module', 'react'] as const;
export type PluginUiType = (typeof PLUGIN_UI_TYPES)[number];

export const PLUGIN_SLOTS = ['tab'] as const;
export type PluginSlot = (typeof PLUGIN_SLOTS)[number];
