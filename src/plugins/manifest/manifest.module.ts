import { Module } from '@nestjs/common';

import { DatabaseModule } from '../../database/database.module';
import { PluginRegistry } from './plugin-registry.service';
import { pluginStateStoreProvider } from './plugin-state.store';

/**
 * The manifest room: plugin discovery under PLUGINS_DIR, manifest validation, and the persisted
 * plugin state (enable flags, access roles) behind PLUGIN_STATE_STORE. Everything else in
 * `plugins/` reads plugins through the PluginRegistry exported here.
 */
@Module({
  imports: [DatabaseModule],
  providers: [pluginStateStoreProvider, PluginRegistry],
  exports: [PluginRegistry],
})
export class ManifestModule {}
