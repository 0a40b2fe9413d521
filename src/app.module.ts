import { DynamicModule, Module } from '@nestjs/common';

import { AuthModule } from './auth/auth.module';
import { OidcModule } from './auth/oidc/oidc.module';
import { HttpPipelineModule } from './common/http-pipeline.module';
import { ConfigModule } from './config/config.module';
import { ConsoleModule } from './console/console.module';
import { EventsModule } from './events/events.module';
import { PorticoConfig } from './config/portico-config';
import { HealthModule } from './health/health.module';
import { CapacityMonitor } from './http/capacity-monitor';
import { HttpDrain } from './http/http-drain';
import { LoggingModule } from './logging/logging.module';
import { MetricsModule } from './metrics/metrics.module';
import { PluginsModule } from './plugins/plugins.module';

@Module({})
export class AppModule {
  public static forRoot(config?: PorticoConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        HttpPipelineModule,
        LoggingModule,
        MetricsModule,
        AuthModule,
        OidcModule,
        PluginsModule,
        EventsModule,
        ConsoleModule,
        HealthModule,
      ],
      providers: [HttpDrain, CapacityMonitor],
    };
  }
}
