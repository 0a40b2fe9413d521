import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import type { Clock, ClockTimer } from '../../common/clock';
import {
  DEFAULT_LOCK_TIMINGS,
  judgeLock,
  lockHeldMessage,
  LockObservation,
  LockTimings,
  LockVerdict,
} from './data-dir-lock-verdict';
import { HostProcess, IsRunning, parseHostProcess } from './host-process';

/** File in DATA_DIR naming the host that uses it; its mtime is the holder's heartbeat. */
export const DATA_DIR_LOCK_FILE = 'portico.lock';

/** Exit code of a host refused a held DATA_DIR: EX_TEMPFAIL, "try again later". */
export const DATA_DIR_LOCKED_EXIT_CODE = 75;

const LOCK_FORMAT = 'portico-data-dir-lock';
const LOCK_VERSION = 1;
/** Takeovers and creations racing with other starting hosts before giving up. */
const MAX_ATTEMPTS = 5;

/**
 * One host per DATA_DIR: the child ledger in it lists the plugin processes of *the* host using
 * it, and a second host would end them at its start (see ChildLedger).
 */
export interface DataDirLock {
  /** Takes the lock (again: a no-op). Throws DataDirLockedError when a live host holds it. */
  acquire(): void;
  /** Stops the heartbeat and removes the lock file if it is still this host's. */
  release(): void;
}

/** Injection token of the DataDirLock. */
export const DATA_DIR_LOCK = Symbol('DATA_DIR_LOCK');

/** A live host holds DATA_DIR; the message says which and what to do (main.ts prints it). */
export class DataDirLockedError extends Error {
  public constructor(
    message: string,
    public readonly holder: HostProcess | undefined,
  ) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

interface SeenLock extends LockObservation {
  /** The file's exact content, to tell "the same lock" from a new one with the same holder. */
  readonly raw: string;
}

/**
 * The DATA_DIR lock as a file, `DATA_DIR/portico.lock`: JSON naming the holder (host name, boot
 * id, pid namespace, pid, process start time, instance id), created with O_EXCL, and refreshed
 * by its holder every `heartbeatMs` by setting its mtime (an unref'd timer). A starting host
 * decides with `judgeLock`: a holder whose pid it can see (same boot and pid namespace) holds
 * the lock while that process runs; any other holder (another pod on a shared volume) while its
 * heartbeat is younger than `leaseMs`. A stale lock is taken over: moved aside, checked to be
 * the very file judged stale (else put back), removed, and created anew. The file is read with
 * open + fstat, so an NFS client's attribute cache does not hide a fresh heartbeat.
 *
 * Best effort where the disk refuses: a lock file that cannot be created (read-only DATA_DIR)
 * is logged and the host runs unprotected, as it did before there was a lock.
 */
export class FileDataDirLock implements DataDirLock {
  private readonly logger = new Logger('DataDirLock');
  public readonly file: string;
  /** The content of the lock file while this host holds it. */
  private held: string | undefined;
  private timer: ClockTimer | undefined;
  private warnedBeat = false;

  public constructor(
    private readonly dataDir: string,
    private readonly self: HostProcess,
    private readonly clock: Clock,
    private readonly isRunning: IsRunning,
    private readonly timings: LockTimings = DEFAULT_LOCK_TIMINGS,
  ) {
    this.file = join(dataDir, DATA_DIR_LOCK_FILE);
  }

  public acquire(): void {
    if (this.held !== undefined) return;
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const body = this.body();
    let tookOver: Extract<LockVerdict, { kind: 'stale' }> | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let created: boolean;
      try {
        created = this.create(body);
      } catch (err) {
        this.logger.error({
          event: 'data_dir_lock_unavailable',
          file: this.file,
          reason: (err as Error).message,
          consequence: 'another host started on this DATA_DIR would not be refused',
        });
        return;
      }
      if (created) {
        this.held = body;
        this.schedule();
        if (tookOver !== undefined)
          this.logger.warn({
            event: 'data_dir_lock_taken_over',
            file: this.file,
            reason: tookOver.reason,
            previous: describe(tookOver.holder),
          });
        return;
      }
      const seen = this.observe(this.file);
      const now = this.clock.now();
      const verdict = judgeLock(seen, this.self, now, this.timings.leaseMs, this.isRunning);
      switch (verdict.kind) {
        case 'free':
          continue; // removed since the attempt: try again
        case 'own':
          this.held = seen?.raw;
          this.schedule();
          return;
        case 'held':
          throw new DataDirLockedError(
            lockHeldMessage(
              this.dataDir,
              this.file,
              verdict,
              now,
              seen?.heartbeatAt ?? now,
              this.timings.leaseMs,
            ),
            verdict.holder,
          );
        case 'stale':
          if (seen !== undefined && this.removeStale(seen)) tookOver = verdict;
          continue;
      }
    }
    throw new Error(`could not take the lock ${this.file}: other hosts kept changing it`);
  }

  public release(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = undefined;
    if (held === undefined) return;
    if (this.observe(this.file)?.raw === held) rmSync(this.file, { force: true });
  }

  private body(): string {
    const content = {
      format: LOCK_FORMAT,
      version: LOCK_VERSION,
      holder: this.self,
      acquiredAt: new Date(this.clock.now()).toISOString(),
    };
    return JSON.stringify(content) + '\n';
  }

  /** Creates the lock file with `body` unless it exists; its mtime is the first heartbeat. */
  private create(body: string): boolean {
    let fd: number;
    try {
      fd = openSync(this.file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      this.touch();
    } catch {
      // The creation time is the first heartbeat then; the next beat sets it again.
    }
    return true;
  }

  /** The lock file as it is now; undefined when there is none. */
  private observe(path: string): SeenLock | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const heartbeatAt = fstatSync(fd).mtimeMs;
      const raw = readFileSync(fd, 'utf8');
      return { raw, heartbeatAt, holder: parseLock(raw) };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Removes the lock judged stale, unless it changed since it was looked at (its holder beat,
   * or another starting host replaced it): moved aside first, so what is checked is exactly
   * what is removed.
   */
  private removeStale(seen: SeenLock): boolean {
    const aside = `${this.file}.${this.self.instance}.stale`;
    try {
      renameSync(this.file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const moved = this.observe(aside);
    if (moved?.raw === seen.raw && moved.heartbeatAt === seen.heartbeatAt) {
      rmSync(aside, { force: true });
      return true;
    }
    // Not the lock judged stale: put it back (unless a new one was created meanwhile).
    if (!existsSync(this.file)) renameSync(aside, this.file);
    else rmSync(aside, { force: true });
    return false;
  }

  private touch(): void {
    const seconds = this.clock.now() / 1000;
    utimesSync(this.file, seconds, seconds);
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => this.beat(), this.timings.heartbeatMs);
  }

  /** Refreshes the heartbeat while the file is still this host's; a lost lock is logged once. */
  private beat(): void {
    this.timer = undefined;
    const held = this.held;
    if (held === undefined) return;
    try {
      let seen = this.observe(this.file);
      if (seen === undefined) {
        // Removed by hand or by a host that judged it stale: this host still runs, it is ours.
        if (this.create(held))
          this.logger.warn({ event: 'data_dir_lock_restored', file: this.file });
        seen = this.observe(this.file);
      }
      if (seen?.raw === held) {
        this.touch();
        this.schedule();
        return;
      }
      this.held = undefined;
      this.logger.error({
        event: 'data_dir_lock_lost',
        file: this.file,
        holder: describe(seen?.holder),
        consequence: 'another host uses this DATA_DIR; stop one of them',
      });
    } catch (err) {
      if (!this.warnedBeat) {
        this.warnedBeat = true;
        this.logger.warn({
          event: 'data_dir_lock_heartbeat_failed',
          file: this.file,
          reason: (err as Error).message,
        });
      }
      this.schedule();
    }
  }
}

function parseLock(raw: string): HostProcess | undefined {
  try {
    const parsed = JSON.parse(raw) as { format?: unknown; version?: unknown; holder?: unknown };
    if (parsed.format !== LOCK_FORMAT || parsed.version !== LOCK_VERSION) return undefined;
    return parseHostProcess(parsed.holder);
  } catch {
    return undefined;
  }
}

/** A holder for a log line: where and which process, not the instance id. */
function describe(holder: HostProcess | undefined): Record<string, unknown> | undefined {
  if (holder === undefined) return undefined;
  return { hostname: holder.hostname, pid: holder.pid, bootId: holder.bootId };
}
