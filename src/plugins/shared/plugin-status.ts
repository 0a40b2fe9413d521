import type { PluginDescriptor } from '../manifest/plugin-descriptor';
import type { PluginStatus } from './plugin.types';

/**
 * A plugin's state as the API reports it (docs/plugin-contract.md §2): `invalid` and `disabled`
 * come from its descriptor, everything else from its server's supervisor (`processState`,
 * undefined when no supervisor exists yet: `stopped`).
 */
export function pluginStatus(
  descriptor: PluginDescriptor,
  processState: PluginStatus | undefined,
): PluginStatus {
  if (descriptor.invalidReason !== undefined) return 'invalid';
  if (!descriptor.enabled) return 'disabled';
  return processState ?? 'stopped';
}
