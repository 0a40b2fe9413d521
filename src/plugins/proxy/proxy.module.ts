import { Module } from '@nestjs/common';

import { AuthModule } from '../../auth/auth.module';
import { ClockModule } from '../../common/clock.module';
import { UpgradeRoutes } from '../../http/upgrade-routes';
import { ManifestModule } from '../manifest/manifest.module';
import { ProcessModule } from '../process/process.module';
import { SecretsModule } from '../secrets/secrets.module';
import { PluginProxyGateway } from './plugin-proxy.gateway';
import { PluginUpstreams } from './plugin-upstreams';
import { RelayRegistry } from './relay-registry';
import { RpcProxyController } from './rpc-proxy.controller';
import { upstreamDialerProvider } from './upstream-dialer';

/**
 * The proxy room (docs/architecture.md): browser traffic to a plugin's own server.
 * `/plugin-ws/:name` is PluginProxyGateway, the upgrade router on the HTTP server's `upgrade`
 * event, with the handshake built by ws-handshake.ts, the plugin reached through UPSTREAM_DIALER
 * and live connections kept by RelayRegistry; `/api/plugins/:name/rpc/*` is RpcProxyController.
 * It exports only UpgradeRoutes, where the WebSocket adapter of Portico's own gateways claims
 * their paths (`/api/events`) so that the upgrade router leaves them alone.
 */
@Module({
  imports: [AuthModule, ClockModule, ManifestModule, SecretsModule, ProcessModule],
  controllers: [RpcProxyController],
  providers: [
    upstreamDialerProvider,
    PluginUpstreams,
    RelayRegistry,
    PluginProxyGateway,
    UpgradeRoutes,
  ],
  exports: [UpgradeRoutes],
})
export class ProxyModule {}
