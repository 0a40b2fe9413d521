import { Module } from '@nestjs/common';

import { AuthModule } from '../auth/auth.module';
import { PluginsModule } from '../plugins/plugins.module';
import { EventsGateway } from './events.gateway';

/**
 * Portico's own WebSocket endpoints, as Nest gateways served through AuthenticatedWsAdapter
 * (set on the application in bootstrap.ts): `/api/events`, live plugin status and output.
 */
@Module({
  imports: [AuthModule, PluginsModule],
  providers: [EventsGateway],
})
export class EventsModule {}
