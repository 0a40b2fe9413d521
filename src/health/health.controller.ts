import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';

import { Public } from '../auth/public.decorator';
import { PluginsHealthIndicator } from './plugins.health-indicator';

/** Kubernetes probes: `/healthz` (liveness) and `/readyz` (readiness, 503 until ready). */
@Controller()
@Public()
export class HealthController {
  public constructor(
    private readonly health: HealthCheckService,
    private readonly plugins: PluginsHealthIndicator,
  ) {}

  @Get('healthz')
  @HealthCheck()
  public liveness(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('readyz')
  @HealthCheck()
  public readiness(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.plugins.check('plugins'),
      () => this.plugins.config('config'),
    ]);
  }
}
