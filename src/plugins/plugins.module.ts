import { Module } from '@nestjs/common';

import { AssetsModule } from './assets/assets.module';
import { ManifestModule } from './manifest/manifest.module';
import { PluginsController } from './plugins.controller';
import { PluginViews } from './plugin-views.service';
import { PluginsService } from './plugins.service';
import { ProcessModule } from './process/process.module';
import { ProxyModule } from './proxy/proxy.module';
import { SecretsModule } from './secrets/secrets.module';

/**
 * Plugins, composed from one module per room (docs/architecture.md): manifest (discovery and
 * state), secrets, process (supervision), proxy (WebSocket and RPC) and assets. This module
 * keeps the management API (`/api/plugins`, PluginsController) and PluginsService, which ties
 * discovery to supervision; it exports PluginsService for the health checks.
 */
@Module({
  imports: [ManifestModule, SecretsModule, ProcessModule, ProxyModule, AssetsModule],
  controllers: [PluginsController],
  providers: [PluginsService, PluginViews],
  exports: [PluginsService, PluginViews],
})
export class PluginsModule {}
