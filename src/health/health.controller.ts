import { Controller, Get, Res, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import type { Response } from 'express';

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

  /**
   * 200 or 503 with the same body, terminus's `{status, info, error, details}`: an operator
   * looking at a pod that is not ready sees why (which plugins are starting, draining), which
   * the error filter's `{statusCode, error, message}` would drop.
   */
  @Get('readyz')
  @HealthCheck()
  public async readiness(
    @Res({ passthrough: true }) res: Response,
  ): Promise<HealthCheckResult | string | object> {
    try {
      return await this.health.check([
        () => this.plugins.check('plugins'),
        () => this.plugins.config('config'),
      ]);
    } catch (err) {
      if (!(err instanceof ServiceUnavailableException)) throw err;
      res.status(503);
      return err.getResponse();
    }
  }
}
