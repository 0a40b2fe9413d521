import { Expose } from 'class-transformer';
import { IsBoolean, IsOptional } from 'class-validator';

import {
  MAX_FAILED_STARTS_MAX,
  MAX_FAILED_STARTS_MIN,
  RESTART_MS_MAX,
  RESTART_MS_MIN,
} from './manifest.constants';
import { IsIntInRange, IsNotLessThan } from './manifest.validators';

/** Per-plugin overrides of the supervision defaults (docs/plugin-contract.md §2); unset = default. */
export class RestartPolicyDto {
  /** false: an unexpected exit leaves the plugin `failed` instead of restarting it. */
  @Expose()
  @IsOptional()
  @IsBoolean()
  public enabled?: boolean;

  /** Failed starts in a row before the plugin is `failed`. */
  @Expose()
  @IsOptional()
  @IsIntInRange(MAX_FAILED_STARTS_MIN, MAX_FAILED_STARTS_MAX)
  public maxFailedStarts?: number;

  @Expose()
  @IsOptional()
  @IsIntInRange(RESTART_MS_MIN, RESTART_MS_MAX)
  public initialBackoffMs?: number;

  @Expose()
  @IsOptional()
  @IsIntInRange(RESTART_MS_MIN, RESTART_MS_MAX)
  @IsNotLessThan('initialBackoffMs')
  public maxBackoffMs?: number;

  /** Running this long resets the backoff and the failed-start count. */
  @Expose()
  @IsOptional()
  @IsIntInRange(RESTART_MS_MIN, RESTART_MS_MAX)
  public healthyAfterMs?: number;
}
