import { holderState, HostProcess, IsRunning } from './host-process';

/** The lock file as one look at it found it. */
export interface LockObservation {
  /** Who wrote it; undefined when the file cannot be parsed (another version, or damage). */
  readonly holder: HostProcess | undefined;
  /** The holder's last heartbeat: the file's mtime, in ms since the epoch. */
  readonly heartbeatAt: number;
}

export interface LockTimings {
  /** How often the holder refreshes its heartbeat. */
  readonly heartbeatMs: number;
  /** How long after its last heartbeat a holder whose pid cannot be looked up counts as live. */
  readonly leaseMs: number;
}

/**
 * Heartbeat every 5 s; a holder out of sight is given up 30 s after its last one: six missed
 * beats, room for a blocked event loop, a slow shared volume and some clock skew between
 * machines (their clocks must agree to well within the lease).
 */
export const DEFAULT_LOCK_TIMINGS: LockTimings = { heartbeatMs: 5_000, leaseMs: 30_000 };

export type LockVerdict =
  /** No lock file: create it. */
  | { readonly kind: 'free' }
  /** This application instance holds it already. */
  | { readonly kind: 'own' }
  /** A live host holds it: refuse to start. */
  | {
      readonly kind: 'held';
      readonly holder: HostProcess | undefined;
      /** `running`: its pid runs here; `heartbeat`: out of sight, heartbeat within the lease. */
      readonly reason: 'running' | 'heartbeat';
    }
  /** Its holder is gone: take it over. */
  | {
      readonly kind: 'stale';
      readonly holder: HostProcess | undefined;
      /** `exited`: its pid is gone or another process's; `expired`: no heartbeat for the lease. */
      readonly reason: 'exited' | 'expired';
    };

/**
 * What `observer` should do about the lock as `lock` shows it at `now`. A holder whose pid the
 * observer can see is judged by its pid alone (a stopped or busy host that runs still holds it;
 * a dead one is taken over at once); any other holder, and a file that cannot be read, by its
 * heartbeat. A heartbeat from the future (clock skew) counts as fresh.
 */
export function judgeLock(
  lock: LockObservation | undefined,
  observer: HostProcess,
  now: number,
  leaseMs: number,
  isRunning: IsRunning,
): LockVerdict {
  if (lock === undefined) return { kind: 'free' };
  const { holder } = lock;
  const state = holder === undefined ? 'out-of-sight' : holderState(holder, observer, isRunning);
  switch (state) {
    case 'self':
      return { kind: 'own' };
    case 'running':
      return { kind: 'held', holder, reason: 'running' };
    case 'exited':
      return { kind: 'stale', holder, reason: 'exited' };
    case 'out-of-sight':
      return now - lock.heartbeatAt > leaseMs
        ? { kind: 'stale', holder, reason: 'expired' }
        : { kind: 'held', holder, reason: 'heartbeat' };
  }
}

/**
 * The startup error for a held lock: what is held, by whom, and what the operator can do.
 * Never a secret: the lock holds host names and process ids only.
 */
export function lockHeldMessage(
  dataDir: string,
  lockFile: string,
  verdict: Extract<LockVerdict, { kind: 'held' }>,
  now: number,
  heartbeatAt: number,
  leaseMs: number,
): string {
  const { holder } = verdict;
  const who =
    holder === undefined
      ? `an unreadable lock file (${lockFile})`
      : `another Portico (pid ${holder.pid} on host "${holder.hostname}")`;
  const lines = [
    `DATA_DIR ${dataDir} is in use by ${who}.`,
    'Two hosts on one DATA_DIR would end each other’s plugins, so this one does not start.',
  ];
  if (verdict.reason === 'running') {
    lines.push(
      `Stop that host (pid ${holder?.pid ?? '?'}) first, or give this one its own DATA_DIR.`,
    );
  } else {
    const ago = Math.max(0, Math.round((now - heartbeatAt) / 1000));
    const freeAt = new Date(heartbeatAt + leaseMs).toISOString();
    lines.push(
      `Its last heartbeat was ${ago} s ago. Stop that host or give this one its own DATA_DIR;` +
        ` if it is no longer running, its lock expires ${leaseMs / 1000} s after its last` +
        ` heartbeat (at ${freeAt}) and the next start takes it over.`,
    );
  }
  return lines.join(' ');
}
