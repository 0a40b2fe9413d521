import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import {
  DATA_DIR_LOCK_FILE,
  DataDirLockedError,
  FileDataDirLock,
} from '../../../src/plugins/process/data-dir-lock';
import type { HostProcess } from '../../../src/plugins/process/host-process';
import { FakeClock } from '../../helpers/fake-clock';
import { hostProcess } from './host-process.fixture';

const START = Date.UTC(2026, 0, 1);
const TIMINGS = { heartbeatMs: 5_000, leaseMs: 30_000 };

/**
 * The lock file itself, on a real temporary folder, with fake clocks and a fake "is this
 * process running": every decision a starting host makes, without starting one.
 */
describe('FileDataDirLock', () => {
  let dataDir: string;
  let file: string;
  /** pid@startTime of the processes that "run". */
  let running: Set<string>;
  let warn: jest.SpyInstance;
  let error: jest.SpyInstance;
  const locks: FileDataDirLock[] = [];

  const clockAt = (time: number): FakeClock => {
    const clock = new FakeClock();
    clock.advance(time);
    return clock;
  };
  const lockFor = (self: HostProcess, clock: FakeClock): FileDataDirLock => {
    const lock = new FileDataDirLock(
      dataDir,
      self,
      clock,
      (pid, start) => running.has(`${pid}@${start}`),
      TIMINGS,
    );
    locks.push(lock);
    return lock;
  };
  const holderInFile = (): unknown =>
    (JSON.parse(readFileSync(file, 'utf8')) as { holder: unknown }).holder;
  const heartbeat = (): number => statSync(file).mtimeMs;
  const events = (spy: jest.SpyInstance): unknown[] =>
    spy.mock.calls.map(([line]) => (line as { event?: unknown }).event);

  const first = hostProcess({ pid: 40, startTime: '4000' });
  const second = hostProcess({ pid: 60, startTime: '6000' });
  const remote = hostProcess({ hostname: 'node-b', bootId: 'boot-b', pid: 7, startTime: '70' });

  beforeEach(() => {
    dataDir = join(mkdtempSync(join(tmpdir(), 'portico-lock-')), 'data');
    file = join(dataDir, DATA_DIR_LOCK_FILE);
    running = new Set(['40@4000', '60@6000']);
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    for (const lock of locks.splice(0)) lock.release();
    jest.restoreAllMocks();
    rmSync(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('creates DATA_DIR and the lock naming this host, its heartbeat now', () => {
    const clock = clockAt(START);
    lockFor(first, clock).acquire();
    expect(holderInFile()).toEqual(first);
    expect(heartbeat()).toBe(START);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('refreshes the heartbeat every heartbeatMs while held, with one timer', () => {
    const clock = clockAt(START);
    lockFor(first, clock).acquire();
    clock.advance(5_000);
    expect(heartbeat()).toBe(START + 5_000);
    clock.advance(12_000);
    expect(heartbeat()).toBe(START + 15_000);
    expect(clock.pendingTimers).toBe(1);
  });

  it('acquiring again is a no-op', () => {
    const clock = clockAt(START);
    const lock = lockFor(first, clock);
    lock.acquire();
    lock.acquire();
    expect(clock.pendingTimers).toBe(1);
  });

  it('refuses a second host while the holder’s process runs here, and leaves the lock as it is', () => {
    lockFor(first, clockAt(START)).acquire();
    const before = readFileSync(file, 'utf8');
    const clock = clockAt(START + 10 * TIMINGS.leaseMs); // a stale heartbeat does not matter here
    let thrown: unknown;
    try {
      lockFor(second, clock).acquire();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DataDirLockedError);
    expect((thrown as DataDirLockedError).holder).toEqual(first);
    expect((thrown as Error).message).toContain(`DATA_DIR ${dataDir} is in use`);
    expect((thrown as Error).message).toContain('pid 40 on host "node-a"');
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(clock.pendingTimers).toBe(0);
  });

  it('takes over at once the lock of a holder whose process has exited, and says so once', () => {
    lockFor(first, clockAt(START)).acquire();
    running.delete('40@4000'); // SIGKILLed: no release
    const clock = clockAt(START + 1_000);
    lockFor(second, clock).acquire();
    expect(holderInFile()).toEqual(second);
    expect(heartbeat()).toBe(START + 1_000);
    expect(events(warn)).toEqual(['data_dir_lock_taken_over']);
    expect(warn.mock.calls[0][0]).toMatchObject({ reason: 'exited', previous: { pid: 40 } });
  });

  describe('a holder on another machine (shared volume)', () => {
    it('holds the lock while its heartbeat is within the lease', () => {
      lockFor(remote, clockAt(START)).acquire();
      expect(() => lockFor(second, clockAt(START + TIMINGS.leaseMs)).acquire()).toThrow(
        /last heartbeat was 30 s ago/,
      );
    });

    it('keeps holding it as long as it beats', () => {
      const remoteClock = clockAt(START);
      lockFor(remote, remoteClock).acquire();
      remoteClock.advance(60_000); // twelve beats
      expect(() => lockFor(second, clockAt(START + 60_000)).acquire()).toThrow(DataDirLockedError);
    });

    it('is taken over once its heartbeat is older than the lease', () => {
      lockFor(remote, clockAt(START)).acquire(); // then never beats again
      lockFor(second, clockAt(START + TIMINGS.leaseMs + 1)).acquire();
      expect(holderInFile()).toEqual(second);
      expect(warn.mock.calls[0][0]).toMatchObject({
        event: 'data_dir_lock_taken_over',
        reason: 'expired',
        previous: { hostname: 'node-b', pid: 7 },
      });
    });
  });

  it('holds off while an unreadable lock file is fresh, and takes it over once it is not', () => {
    lockFor(first, clockAt(START)).acquire();
    writeFileSync(file, 'garbage');
    utimesSync(file, START / 1000, START / 1000);
    expect(() => lockFor(second, clockAt(START + 1_000)).acquire()).toThrow(/unreadable lock file/);
    lockFor(second, clockAt(START + TIMINGS.leaseMs + 1)).acquire();
    expect(holderInFile()).toEqual(second);
  });

  it('release removes its lock and stops the heartbeat; the next host takes it without a word', () => {
    const clock = clockAt(START);
    const lock = lockFor(first, clock);
    lock.acquire();
    lock.release();
    expect(() => statSync(file)).toThrow();
    expect(clock.pendingTimers).toBe(0);
    lockFor(second, clockAt(START)).acquire();
    expect(holderInFile()).toEqual(second);
    expect(warn).not.toHaveBeenCalled();
  });

  it('puts back its lock when the file was removed under it', () => {
    const clock = clockAt(START);
    lockFor(first, clock).acquire();
    rmSync(file);
    clock.advance(5_000);
    expect(holderInFile()).toEqual(first);
    expect(events(warn)).toEqual(['data_dir_lock_restored']);
  });

  it('notices once that another host replaced its lock, stops beating, and leaves theirs', () => {
    const clock = clockAt(START);
    const lock = lockFor(first, clock);
    lock.acquire();
    rmSync(file);
    lockFor(remote, clockAt(START)).acquire();
    const theirs = readFileSync(file, 'utf8');
    clock.advance(5_000);
    clock.advance(5_000);
    expect(events(error)).toEqual(['data_dir_lock_lost']);
    expect(error.mock.calls[0][0]).toMatchObject({ holder: { hostname: 'node-b' } });
    lock.release();
    expect(readFileSync(file, 'utf8')).toBe(theirs);
  });
});
