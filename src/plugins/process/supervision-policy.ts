import type { ManifestDto } from '../manifest/manifest.dto';
import type { RestartPolicyDto } from '../manifest/restart-policy.dto';

/** Restart and timing rules for one plugin (docs/plugin-contract.md §2 defaults, manifest overrides). */
export interface SupervisionPolicy {
  /** Restart after an unexpected exit. */
  readonly restart: boolean;
  readonly readyTimeoutMs: number;
  /** Consecutive failed starts (exit before ready, not ready in time) before it is `failed`. */
  readonly maxFailedStarts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Running this long resets the backoff (a ready line alone ends a run of failed starts). */
  readonly healthyAfterMs: number;
  /** Time between SIGTERM and SIGKILL when stopping. */
  readonly killGraceMs: number;
}

export const DEFAULT_POLICY: SupervisionPolicy = {
  restart: true,
  readyTimeoutMs: 10_000,
  maxFailedStarts: 5,
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  healthyAfterMs: 60_000,
  killGraceMs: 5_000,
};

/** The defaults, overridden by the manifest's `restart`, overridden by PLUGINS_CONFIG's. */
export function policyFor(
  manifest: ManifestDto | undefined,
  overrides?: Readonly<RestartPolicyDto>,
): SupervisionPolicy {
  const r = { ...manifest?.restart, ...overrides };
  return {
    restart: r?.enabled ?? DEFAULT_POLICY.restart,
    readyTimeoutMs: manifest?.readyTimeoutMs ?? DEFAULT_POLICY.readyTimeoutMs,
    maxFailedStarts: r?.maxFailedStarts ?? DEFAULT_POLICY.maxFailedStarts,
    initialBackoffMs: r?.initialBackoffMs ?? DEFAULT_POLICY.initialBackoffMs,
    maxBackoffMs: r?.maxBackoffMs ?? DEFAULT_POLICY.maxBackoffMs,
    healthyAfterMs: r?.healthyAfterMs ?? DEFAULT_POLICY.healthyAfterMs,
    killGraceMs: DEFAULT_POLICY.killGraceMs,
  };
}

/** Backoff after the `exits`-th unexpected exit in a row (1-based): initial, doubling, capped. */
export function backoffMs(policy: SupervisionPolicy, exits: number): number {
  const exp = Math.min(Math.max(exits - 1, 0), 30);
  return Math.min(policy.initialBackoffMs * 2 ** exp, policy.maxBackoffMs);
}
