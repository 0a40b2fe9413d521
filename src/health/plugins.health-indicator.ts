import { Injectable } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';

import { PluginsService } from '../plugins/plugins.service';

/** Ready once discovery is done and no enabled plugin is still starting; down while draining. */
@Injectable()
export class PluginsHealthIndicator {
  public constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly plugins: PluginsService,
  ) {}

  public check(key: 'plugins'): HealthIndicatorResult<'plugins'> {
    const session = this.indicators.check(key);
    const starting = this.plugins.starting();
    if (this.plugins.draining) return session.down({ reason: 'shutting down' });
    if (!this.plugins.discovered) return session.down({ reason: 'discovery not done' });
    if (starting.length > 0) return session.down({ starting });
    return session.up({ plugins: this.plugins.list().length });
  }

  /**
   * Where plugin state comes from. Always up: an invalid PLUGINS_CONFIG leaves the last good
   * one in force, and taking every replica out of service for it would turn a typo into an
   * outage; `lastError` (and the metric portico_config_valid) says what is wrong.
   */
  public config(key: 'config'): HealthIndicatorResult<'config'> {
    return this.indicators.check(key).up({ ...this.plugins.stateSource() });
  }
}
