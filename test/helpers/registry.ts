import { join } from 'node:path';

import { PorticoConfig } from '../../src/config/portico-config';
import { PLUGIN_STATE_FILE } from '../../src/plugins/manifest/manifest.constants';
import { PluginRegistry } from '../../src/plugins/manifest/plugin-registry.service';
import { FilePluginStateStore } from '../../src/plugins/manifest/plugin-state.store';

/** A registry over `config`'s PLUGINS_DIR with the embedded file store in its DATA_DIR. */
export function registryFor(config: PorticoConfig): PluginRegistry {
  return new PluginRegistry(
    config,
    new FilePluginStateStore(join(config.DATA_DIR, PLUGIN_STATE_FILE)),
  );
}
