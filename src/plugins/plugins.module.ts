import { Module } from '@nestjs/common';

import { AuthModule } from '../auth/auth.module';
import { AssetsModule } from './assets/assets.module';
import { ManifestModule } from './manifest/manifest.module';
import { PluginsController } from './plugins.controller';
import { PluginsService } from './plugins.service';
import { CLOCK, systemClock } from '../common/clock';
import { NodeProcessSpawner } from './process/node-process-spawner';
import { PluginProcessManager } from './process/plugin-process-manager.service';
import { PROCESS_SPAWNER } from './process/process-spawner';
import { PluginProxyGateway } from './proxy/plugin-proxy.gateway';
import { PluginUpstreams } from './proxy/plugin-upstreams';
import { RelayRegistry } from './proxy/relay-registry';
import { upstreamDialerProvider } from './proxy/upstream-dialer';
import { RpcProxyController } from './proxy/rpc-proxy.controller';
import { PluginIdentityService } from './secrets/plugin-identity.service';
import { SecretsController } from './secrets/secrets.controller';
import { SECRETS_PROVIDERS } from './secrets/secrets.providers';

@Module({
  imports: [AuthModule, ManifestModule, AssetsModule],
  // RPC and assets routes are more specific than the management routes: register them first.
  controllers: [RpcProxyController, SecretsController, PluginsController],
  providers: [
    { provide: CLOCK, useValue: systemClock },
    { provide: PROCESS_SPAWNER, useClass: NodeProcessSpawner },
    PluginIdentityService,
    ...SECRETS_PROVIDERS,
    PluginProcessManager,
    PluginsService,
    PluginUpstreams,
    RelayRegistry,
    upstreamDialerProvider,
    PluginProxyGateway,
  ],
  exports: [PluginsService],
})
export class PluginsModule {}
