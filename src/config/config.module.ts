import { DynamicModule, Global, Module } from '@nestjs/common';

import { loadConfig } from './load-config';
import { PorticoConfig } from './portico-config';

/** Provides the validated PorticoConfig everywhere; tests pass their own instance. */
@Global()
@Module({})
export class ConfigModule {
  public static forRoot(config?: PorticoConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: PorticoConfig, useFactory: () => config ?? loadConfig() }],
      exports: [PorticoConfig],
    };
  }
}
