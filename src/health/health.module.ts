import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';

import { PluginsModule } from '../plugins/plugins.module';
import { HealthController } from './health.controller';
import { PluginsHealthIndicator } from './plugins.health-indicator';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), PluginsModule],
  controllers: [HealthController],
  providers: [PluginsHealthIndicator],
})
export class HealthModule {}
