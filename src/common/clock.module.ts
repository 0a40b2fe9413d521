import { Module } from '@nestjs/common';

import { CLOCK, systemClock } from './clock';

/**
 * The time source (CLOCK) for every room that reads time or sets timers it wants a test to
 * control: supervision and the DATA_DIR lease (process), identity timestamps (secrets), session
 * expiry (proxy). One provider, so a test overrides it once for the whole app.
 */
@Module({
  providers: [{ provide: CLOCK, useValue: systemClock }],
  exports: [CLOCK],
})
export class ClockModule {}
