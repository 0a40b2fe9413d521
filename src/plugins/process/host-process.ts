import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

import type { ProcTable } from './proc-table';

/**
 * One running Portico host, as recorded in the DATA_DIR lock and the child ledger: enough to
 * tell, from another process, whether it still runs and whether its process ids mean anything
 * here.
 */
export interface HostProcess {
  /** The machine's (or pod's) host name; shown to operators, never used to decide. */
  readonly hostname: string;
  /** The kernel's boot id (/proc/sys/kernel/random/boot_id): changes at every boot. */
  readonly bootId: string | undefined;
  /**
   * The pid namespace (`readlink /proc/self/ns/pid`, e.g. `pid:[4026531836]`). Containers on
   * one machine share the boot id but not their process ids: only a holder with the same boot
   * id and namespace can be looked up by pid.
   */
  readonly pidNamespace: string | undefined;
  readonly pid: number;
  /** Start time of `pid` (clock ticks since boot): tells the host from a later user of its pid. */
  readonly startTime: string | undefined;
  /** 128 random bits (hex) per application instance: two apps in one Node process differ. */
  readonly instance: string;
}

/** Injection token of this host's own HostProcess, read once at startup. */
export const HOST_PROCESS = Symbol('HOST_PROCESS');

/** Is process `pid` still the one that started at `startTime`? (a fake in tests) */
export type IsRunning = (pid: number, startTime: string) => boolean;

/** IsRunning by one look at the process table. */
export function runningIn(table: ProcTable): IsRunning {
  return (pid, startTime) => table.get(pid)?.startTime === startTime;
}

/**
 * Where a recorded host stands as seen from `observer`:
 * - `self`: the observer's own application instance;
 * - `running` / `exited`: a host whose pids the observer can see (same boot, same pid
 *   namespace), looked up by pid and start time;
 * - `out-of-sight`: another machine, another container, or an earlier boot; its pids say
 *   nothing here (and may name unrelated processes), so only a heartbeat can tell.
 */
export type HolderState = 'self' | 'running' | 'exited' | 'out-of-sight';

export function holderState(
  holder: HostProcess,
  observer: HostProcess,
  isRunning: IsRunning,
): HolderState {
  if (holder.instance === observer.instance) return 'self';
  if (!sharesProcessIds(holder, observer)) return 'out-of-sight';
  return holder.startTime !== undefined && isRunning(holder.pid, holder.startTime)
    ? 'running'
    : 'exited';
}

/** Unknown boot ids or namespaces never match: a wrong "exited" would end a live host's work. */
export function sharesProcessIds(a: HostProcess, b: HostProcess): boolean {
  return (
    a.bootId !== undefined &&
    a.bootId === b.bootId &&
    a.pidNamespace !== undefined &&
    a.pidNamespace === b.pidNamespace
  );
}

/** This process, from the process table and /proc; a fresh instance id on every call. */
export function readHostProcess(table: ProcTable, procRoot = '/proc'): HostProcess {
  return {
    hostname: hostname(),
    bootId: readOrUndefined(() =>
      readFileSync(`${procRoot}/sys/kernel/random/boot_id`, 'utf8').trim(),
    ),
    pidNamespace: readOrUndefined(() => readlinkSync(`${procRoot}/self/ns/pid`)),
    pid: process.pid,
    startTime: table.get(process.pid)?.startTime,
    instance: randomBytes(16).toString('hex'),
  };
}

/** `value` when it is a HostProcess as written by `readHostProcess`, else undefined. */
export function parseHostProcess(value: unknown): HostProcess | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const optionalString = (x: unknown): x is string | undefined =>
    x === undefined || (typeof x === 'string' && x.length > 0);
  if (
    typeof v.hostname !== 'string' ||
    !optionalString(v.bootId) ||
    !optionalString(v.pidNamespace) ||
    !Number.isInteger(v.pid) ||
    (v.pid as number) <= 0 ||
    !(
      v.startTime === undefined ||
      (typeof v.startTime === 'string' && /^[0-9]+$/.test(v.startTime))
    ) ||
    typeof v.instance !== 'string' ||
    !/^[0-9a-f]{32}$/.test(v.instance)
  )
    return undefined;
  return {
    hostname: v.hostname,
    bootId: v.bootId,
    pidNamespace: v.pidNamespace,
    pid: v.pid as number,
    startTime: v.startTime,
    instance: v.instance,
  };
}

function readOrUndefined(read: () => string): string | undefined {
  try {
    const value = read();
    return value.length > 0 ? value : undefined;
  } catch {
    return undefined; // not Linux, or /proc hidden: treated as "cannot see this host's pids"
  }
}
