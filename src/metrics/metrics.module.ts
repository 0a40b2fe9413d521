import { Global, Module } from '@nestjs/common';

import { MetricsController } from './metrics.controller';
import { PorticoMetrics } from './portico-metrics';

@Global()
@Module({
  controllers: [MetricsController],
  providers: [PorticoMetrics],
  exports: [PorticoMetrics],
})
export class MetricsModule {}
