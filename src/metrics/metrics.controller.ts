import { Controller, Get, Header } from '@nestjs/common';

import { Registry } from 'prom-client';

import { Public } from '../auth/public.decorator';
import { PorticoMetrics } from './portico-metrics';

/** `GET /metrics` in Prometheus text format (docs/plugin-contract.md §3); bind it privately if needed. */
@Controller()
@Public()
export class MetricsController {
  public constructor(private readonly metrics: PorticoMetrics) {}

  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  public async scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
