import {
  judgeLock,
  LockObservation,
  lockHeldMessage,
} from '../../../src/plugins/process/data-dir-lock-verdict';
import type { HostProcess } from '../../../src/plugins/process/host-process';
import { hostProcess } from './host-process.fixture';

const LEASE = 30_000;
const NOW = 1_000_000;

describe('judgeLock (what a starting host does about the DATA_DIR lock)', () => {
  const me = hostProcess({ pid: 60 });
  const local = hostProcess({ pid: 40, startTime: '4000' });
  const remote = hostProcess({ hostname: 'node-b', bootId: 'boot-b', pid: 1, startTime: '10' });
  const seen = (holder: HostProcess | undefined, age: number): LockObservation => ({
    holder,
    heartbeatAt: NOW - age,
  });
  const alive = (pid: number, start: string): boolean => pid === 40 && start === '4000';
  const dead = (): boolean => false;
  const judge = (lock: LockObservation | undefined, isRunning = alive) =>
    judgeLock(lock, me, NOW, LEASE, isRunning);

  it('takes a missing lock', () => {
    expect(judge(undefined)).toEqual({ kind: 'free' });
  });

  it('recognises its own lock', () => {
    expect(judge(seen(me, 0))).toEqual({ kind: 'own' });
  });

  describe('a holder on this machine', () => {
    it('holds the lock while its process runs, however old its heartbeat', () => {
      expect(judge(seen(local, 0))).toEqual({ kind: 'held', holder: local, reason: 'running' });
      expect(judge(seen(local, 10 * LEASE))).toMatchObject({ kind: 'held', reason: 'running' });
    });

    it('is taken over at once when its process has exited, however fresh its heartbeat', () => {
      expect(judge(seen(local, 0), dead)).toEqual({
        kind: 'stale',
        holder: local,
        reason: 'exited',
      });
    });
  });

  describe('a holder out of sight (another pod on a shared volume)', () => {
    it('holds the lock while its heartbeat is within the lease', () => {
      expect(judge(seen(remote, 0), dead)).toEqual({
        kind: 'held',
        holder: remote,
        reason: 'heartbeat',
      });
      expect(judge(seen(remote, LEASE), dead)).toMatchObject({ kind: 'held' });
    });

    it('is taken over once its heartbeat is older than the lease', () => {
      expect(judge(seen(remote, LEASE + 1), dead)).toEqual({
        kind: 'stale',
        holder: remote,
        reason: 'expired',
      });
    });

    it('is never judged by a pid that happens to run here', () => {
      const samePid = { ...remote, pid: 40, startTime: '4000' };
      expect(judge(seen(samePid, LEASE + 1), alive)).toMatchObject({ kind: 'stale' });
    });

    it('counts a heartbeat from the future (clock skew) as fresh', () => {
      expect(judge(seen(remote, -LEASE), dead)).toMatchObject({ kind: 'held' });
    });
  });

  it('judges an unreadable lock file by its heartbeat alone', () => {
    expect(judge(seen(undefined, 1_000))).toEqual({
      kind: 'held',
      holder: undefined,
      reason: 'heartbeat',
    });
    expect(judge(seen(undefined, LEASE + 1))).toMatchObject({ kind: 'stale', reason: 'expired' });
  });
});

describe('lockHeldMessage', () => {
  const dataDir = '/srv/portico';
  const file = '/srv/portico/portico.lock';

  it('names DATA_DIR, the holder and what to do when the holder runs here', () => {
    const holder = hostProcess({ hostname: 'node-a', pid: 4242 });
    const message = lockHeldMessage(
      dataDir,
      file,
      { kind: 'held', holder, reason: 'running' },
      NOW,
      NOW,
      LEASE,
    );
    expect(message).toContain('DATA_DIR /srv/portico');
    expect(message).toContain('pid 4242 on host "node-a"');
    expect(message).toMatch(/Stop that host \(pid 4242\).*own DATA_DIR/);
  });

  it('says when the lock of a holder out of sight expires', () => {
    const holder = hostProcess({ hostname: 'node-b', bootId: 'boot-b', pid: 1 });
    const message = lockHeldMessage(
      dataDir,
      file,
      { kind: 'held', holder, reason: 'heartbeat' },
      NOW,
      NOW - 4_000,
      LEASE,
    );
    expect(message).toContain('pid 1 on host "node-b"');
    expect(message).toContain('last heartbeat was 4 s ago');
    expect(message).toContain(
      `expires 30 s after its last heartbeat (at ${new Date(NOW - 4_000 + LEASE).toISOString()})`,
    );
  });

  it('names the file when it cannot be read', () => {
    const message = lockHeldMessage(
      dataDir,
      file,
      { kind: 'held', holder: undefined, reason: 'heartbeat' },
      NOW,
      NOW,
      LEASE,
    );
    expect(message).toContain(`unreadable lock file (${file})`);
  });
});
