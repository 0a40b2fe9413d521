/** A plugin's id: `^[a-zA-Z0-9_-]+$`, used in every URL. */
export type PluginName = string;

export const PLUGIN_NAME_PATTERN = /^[a-zA-Z0-9_-]+$/;

export function isPluginName(value: string): value is PluginName {
  return value.length > 0 && value.length <= 128 && PLUGIN_NAME_PATTERN.test(value);
}

/** docs/plugin-contract.md §2 plugin states. */
export type PluginStatus =
  'disabled' | 'stopped' | 'starting' | 'running' | 'restarting' | 'failed' | 'invalid';
