import {
  ExitInfo,
  PluginSupervisor,
  SpawnPreconditionError,
  SupervisorListener,
  SupervisorState,
} from '../../../src/plugins/process/plugin-supervisor';
import type { SpawnSpec } from '../../../src/plugins/process/process-spawner';
import {
  backoffMs,
  DEFAULT_POLICY,
  SupervisionPolicy,
} from '../../../src/plugins/process/supervision-policy';
import { FakeClock } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';

const SPEC: SpawnSpec = { command: 'node', args: ['server.js'], cwd: '/p', env: {} };

class RecordingListener implements SupervisorListener {
  public readonly states: SupervisorState[] = [];
  public readonly exits: ExitInfo[] = [];
  public readonly lines: string[] = [];
  public readonly stops: { generation: number; willRestart: boolean }[] = [];
  public stopping(_name: string, generation: number, willRestart: boolean): void {
    this.stops.push({ generation, willRestart });
  }
  public stateChanged(_name: string, state: SupervisorState): void {
    this.states.push(state);
  }
  public exited(_name: string, info: ExitInfo): void {
    this.exits.push(info);
  }
  public output(_name: string, _stream: string, line: string): void {
    this.lines.push(line);
  }
}

function setup(policy: Partial<SupervisionPolicy> = {}, spec: () => SpawnSpec = () => SPEC) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const listener = new RecordingListener();
  const supervisor = new PluginSupervisor(
    'demo',
    spec,
    { ...DEFAULT_POLICY, ...policy },
    clock,
    spawner,
    listener,
  );
  return { clock, spawner, listener, supervisor };
}

/** Lets promise callbacks run. */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/*
 * `void supervisor.start()` / `void supervisor.stop()` below: these tests drive the state machine
 * with a fake clock and a fake spawner and assert its states, exits and spawns, not the returned
 * promise. Dropping it is safe: start's promise has its own catch attached (a failed start is a
 * state, PluginSupervisor.waitForStart), and stop's promise never rejects.
 */
describe('PluginSupervisor', () => {
  describe('starting', () => {
    it('is running with the port from the ready line', async () => {
      const { spawner, supervisor, listener } = setup();
      const started = supervisor.start();
      expect(supervisor.snapshot().state).toBe('starting');
      spawner.last.ready(4321);
      await expect(started).resolves.toBeUndefined();
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', port: 4321, restarts: 0 });
      expect(listener.states).toEqual(['starting', 'running']);
    });

    it('ignores garbage, other JSON and bad ports before the ready line', () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      const child = spawner.last;
      child.print('booting...');
      child.print('{"hello":1}');
      child.print('{"ready":true,"port":"80"}');
      child.print('{"ready":true,"port":70000}');
      child.print('{"ready":false,"port":80}');
      child.print('{"ready":true,"port":5000}', 'stderr');
      expect(supervisor.snapshot().state).toBe('starting');
      child.print('  {"ready":true,"port":5001}  ');
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', port: 5001 });
    });

    it('shares one start between concurrent callers', async () => {
      const { spawner, supervisor } = setup();
      const a = supervisor.start();
      const b = supervisor.start();
      const c = supervisor.start();
      expect(spawner.children).toHaveLength(1);
      spawner.last.ready();
      await expect(Promise.all([a, b, c])).resolves.toBeDefined();
      await supervisor.start();
      expect(spawner.children).toHaveLength(1);
    });

    it('only the first ready line counts', () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready(1111);
      spawner.last.ready(2222);
      expect(supervisor.snapshot().port).toBe(1111);
    });

    it('fails without spawning when the spec cannot be built', async () => {
      const { spawner, supervisor } = setup({}, () => {
        throw new SpawnPreconditionError('missing required secrets: API_KEY');
      });
      await expect(supervisor.start()).rejects.toThrow('missing required secrets: API_KEY');
      expect(spawner.children).toHaveLength(0);
      expect(supervisor.snapshot()).toMatchObject({
        state: 'failed',
        lastError: 'missing required secrets: API_KEY',
      });
    });
  });

  describe('ready timeout', () => {
    it('terminates a server that never gets ready and counts a failed start', () => {
      const { clock, spawner, supervisor } = setup({ readyTimeoutMs: 1000 });
      supervisor.start().catch(() => undefined);
      clock.advance(999);
      expect(spawner.last.signals).toEqual([]);
      clock.advance(1);
      expect(spawner.last.signals).toEqual(['SIGTERM']);
      spawner.last.exit(null, 'SIGTERM');
      expect(supervisor.snapshot()).toMatchObject({
        state: 'restarting',
        failedStarts: 1,
        lastError: 'not ready within 1000 ms',
      });
    });

    it('SIGKILLs a server that ignores SIGTERM after the grace period', () => {
      const { clock, spawner, supervisor } = setup({ readyTimeoutMs: 1000, killGraceMs: 5000 });
      supervisor.start().catch(() => undefined);
      clock.advance(1000);
      clock.advance(4999);
      expect(spawner.last.signals).toEqual(['SIGTERM']);
      clock.advance(1);
      expect(spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    });

    it('ignores a ready line printed after the timeout fired', () => {
      const { clock, spawner, supervisor } = setup({ readyTimeoutMs: 1000 });
      supervisor.start().catch(() => undefined);
      clock.advance(1000);
      spawner.last.ready();
      expect(supervisor.snapshot().state).toBe('starting');
    });
  });

  describe('restart policy', () => {
    it('restarts after a crash with exponential backoff capped at the maximum', () => {
      const policy = { ...DEFAULT_POLICY };
      expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffMs(policy, n))).toEqual([
        500, 1000, 2000, 4000, 8000, 16000, 30000, 30000,
      ]);
    });

    it('waits the backoff before spawning again and reports willRestart', () => {
      const { clock, spawner, supervisor, listener } = setup();
      void supervisor.start();
      spawner.last.ready();
      spawner.last.exit(1);
      expect(listener.exits[0]).toMatchObject({ expected: false, willRestart: true, code: 1 });
      expect(supervisor.snapshot()).toMatchObject({ state: 'restarting', port: undefined });
      clock.advance(499);
      expect(spawner.children).toHaveLength(1);
      clock.advance(1);
      expect(spawner.children).toHaveLength(2);
      spawner.last.ready(5555);
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', port: 5555, restarts: 1 });
    });

    it('doubles the backoff for each failure in a row', () => {
      const { clock, spawner, supervisor } = setup({ maxFailedStarts: 10 });
      supervisor.start().catch(() => undefined);
      const delays: number[] = [];
      for (let i = 0; i < 4; i++) {
        spawner.last.exit(1);
        const before = spawner.children.length;
        let waited = 0;
        while (spawner.children.length === before) {
          clock.advance(100);
          waited += 100;
        }
        delays.push(waited);
      }
      expect(delays).toEqual([500, 1000, 2000, 4000]);
    });

    it('is failed after five failed starts in a row and rejects the waiting start', async () => {
      const { clock, spawner, supervisor, listener } = setup();
      const started = supervisor.start();
      for (let i = 0; i < 5; i++) {
        spawner.last.exit(3);
        clock.advance(60_000);
      }
      await expect(started).rejects.toThrow(/gave up after 5 failed starts/);
      expect(spawner.children).toHaveLength(5);
      expect(supervisor.snapshot().state).toBe('failed');
      expect(listener.exits[4]).toMatchObject({ willRestart: false });
      clock.advance(600_000);
      expect(spawner.children).toHaveLength(5);
    });

    it('ends a run of failed starts at the ready line, and resets the backoff after 60 s', () => {
      const { clock, spawner, supervisor } = setup();
      void supervisor.start();
      for (let i = 0; i < 4; i++) {
        spawner.last.exit(1);
        clock.advance(8_000);
      }
      expect(supervisor.snapshot()).toMatchObject({ failedStarts: 4, consecutiveExits: 4 });
      spawner.last.ready();
      expect(supervisor.snapshot()).toMatchObject({ failedStarts: 0, consecutiveExits: 4 });
      clock.advance(59_999);
      expect(supervisor.snapshot().consecutiveExits).toBe(4);
      clock.advance(1);
      expect(supervisor.snapshot().consecutiveExits).toBe(0);
      spawner.last.exit(1);
      expect(supervisor.snapshot()).toMatchObject({ state: 'restarting', consecutiveExits: 1 });
      clock.advance(500);
      expect(spawner.children).toHaveLength(6);
    });
  });

  describe('crashes of a running server (finding: five user-caused crashes left it failed)', () => {
    /** Crashes the running server `times` times, each soon after ready; returns each backoff. */
    const crashLoop = (t: ReturnType<typeof setup>, times: number): number[] => {
      const delays: number[] = [];
      for (let i = 0; i < times; i++) {
        t.spawner.last.ready();
        t.clock.advance(1000);
        t.spawner.last.exit(1);
        const before = t.spawner.children.length;
        let waited = 0;
        while (t.spawner.children.length === before && waited < 600_000) {
          t.clock.advance(100);
          waited += 100;
        }
        if (t.spawner.children.length === before)
          throw new Error(`no restart after crash ${i + 1}`);
        delays.push(waited);
      }
      return delays;
    };

    it('restarts after every crash, with a growing backoff, and is never failed', () => {
      const t = setup();
      const started = t.supervisor.start();
      const delays = crashLoop(t, 12);
      expect(delays).toEqual([
        500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000, 30000,
      ]);
      expect(t.listener.states).not.toContain('failed');
      expect(t.listener.exits.every((e) => e.willRestart)).toBe(true);
      t.spawner.last.ready();
      expect(t.supervisor.snapshot()).toMatchObject({
        state: 'running',
        failedStarts: 0,
        consecutiveExits: 12,
        restarts: 12,
      });
      return started;
    });

    it('a server that ran healthily before crashing restarts after the initial backoff', () => {
      const t = setup();
      void t.supervisor.start();
      expect(crashLoop(t, 3)).toEqual([500, 1000, 2000]);
      t.spawner.last.ready();
      t.clock.advance(60_000);
      t.spawner.last.exit(1);
      expect(t.supervisor.snapshot().consecutiveExits).toBe(1);
      t.clock.advance(500);
      expect(t.spawner.children).toHaveLength(5);
    });

    it('counts only failed starts toward failed, in a row: a ready start ends the run', () => {
      const t = setup({ maxFailedStarts: 2 });
      t.supervisor.start().catch(() => undefined);
      t.spawner.last.exit(3); // failed start 1
      t.clock.advance(500);
      crashLoop(t, 1); // ready, then a crash: the run of failed starts is over
      expect(t.supervisor.snapshot()).toMatchObject({ state: 'starting', failedStarts: 0 });
      t.spawner.last.exit(3); // failed start 1 again
      t.clock.advance(2000);
      expect(t.supervisor.snapshot()).toMatchObject({ state: 'starting', failedStarts: 1 });
      t.spawner.last.exit(3); // failed start 2: the limit
      expect(t.supervisor.snapshot()).toMatchObject({
        state: 'failed',
        failedStarts: 2,
        lastError: 'exited before ready with code 3; gave up after 2 failed starts in a row',
      });
    });

    it('a crash right after a run of failed starts does not complete the run', () => {
      const t = setup({ maxFailedStarts: 2 });
      void t.supervisor.start();
      t.spawner.last.exit(3); // failed start 1 of 2
      t.clock.advance(500);
      t.spawner.last.ready();
      t.spawner.last.exit(1); // a crash, not a failed start
      expect(t.supervisor.snapshot()).toMatchObject({ state: 'restarting', failedStarts: 0 });
    });

    it('stays down after a crash when restart is disabled', () => {
      const { clock, spawner, supervisor, listener } = setup({ restart: false });
      void supervisor.start();
      spawner.last.ready();
      spawner.last.exit(1);
      clock.advance(60_000);
      expect(spawner.children).toHaveLength(1);
      expect(supervisor.snapshot().state).toBe('failed');
      expect(listener.exits[0]?.willRestart).toBe(false);
    });

    it('kills the whole process group after the leader exits', () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready();
      spawner.last.exit(0);
      expect(spawner.children[0]?.signals).toEqual(['SIGKILL']);
    });
  });

  describe('stopping', () => {
    it('sends SIGTERM, resolves on exit, and does not restart', async () => {
      const { clock, spawner, supervisor, listener } = setup();
      void supervisor.start();
      spawner.last.ready();
      let stopped = false;
      const stopping = supervisor.stop().then(() => (stopped = true));
      expect(supervisor.snapshot()).toMatchObject({ state: 'stopped', port: undefined });
      expect(listener.stops).toEqual([{ generation: 1, willRestart: false }]);
      expect(spawner.last.signals).toEqual(['SIGTERM']);
      await flush();
      expect(stopped).toBe(false);
      spawner.last.exit(0);
      await stopping;
      expect(listener.exits[0]).toMatchObject({ expected: true, willRestart: false });
      clock.advance(600_000);
      expect(spawner.children).toHaveLength(1);
    });

    it('SIGKILLs after 5 s when SIGTERM is ignored', () => {
      const { clock, spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready();
      void supervisor.stop();
      clock.advance(4999);
      expect(spawner.last.signals).toEqual(['SIGTERM']);
      clock.advance(1);
      expect(spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    });

    it('cancels a pending restart', () => {
      const { clock, spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.exit(1);
      void supervisor.stop();
      clock.advance(60_000);
      expect(spawner.children).toHaveLength(1);
      expect(supervisor.snapshot().state).toBe('stopped');
      expect(clock.pendingTimers).toBe(0);
    });

    it('rejects a start that is still waiting for the ready line', async () => {
      const { supervisor } = setup();
      const started = supervisor.start();
      void supervisor.stop();
      await expect(started).rejects.toThrow(/stopped/);
    });

    it('starts again once a stopping process has exited', async () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready();
      void supervisor.stop();
      const again = supervisor.start();
      expect(spawner.children).toHaveLength(1);
      spawner.children[0]?.exit(0);
      expect(spawner.children).toHaveLength(2);
      spawner.last.ready(7000);
      await again;
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', port: 7000 });
    });

    it('leaves no timer behind once stopped', async () => {
      const { clock, spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready();
      const stopped = supervisor.stop();
      spawner.last.exit(0);
      await stopped;
      expect(clock.pendingTimers).toBe(0);
    });
  });

  describe('admin restart', () => {
    it('replaces a running process and reports willRestart for its exit', async () => {
      const { spawner, supervisor, listener } = setup();
      void supervisor.start();
      spawner.last.ready(1);
      const restarted = supervisor.restart();
      expect(supervisor.snapshot().state).toBe('restarting');
      expect(listener.stops).toEqual([{ generation: 1, willRestart: true }]);
      expect(spawner.children[0]?.signals).toEqual(['SIGTERM']);
      spawner.children[0]?.exit(0);
      expect(listener.exits[0]).toMatchObject({ expected: true, willRestart: true });
      spawner.last.ready(2);
      await restarted;
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', port: 2, restarts: 1 });
    });

    it('clears failed and starts with a fresh failure count', async () => {
      const { clock, spawner, supervisor } = setup();
      supervisor.start().catch(() => undefined);
      for (let i = 0; i < 5; i++) {
        spawner.last.exit(3);
        clock.advance(60_000);
      }
      expect(supervisor.snapshot().state).toBe('failed');
      const restarted = supervisor.restart();
      expect(supervisor.snapshot()).toMatchObject({
        state: 'starting',
        failedStarts: 0,
        consecutiveExits: 0,
      });
      spawner.last.ready();
      await restarted;
      expect(supervisor.snapshot().state).toBe('running');
    });

    it('a start while an admin restart is under way joins it', async () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.ready();
      const restarted = supervisor.restart();
      const started = supervisor.start();
      spawner.children[0]?.exit(0);
      spawner.last.ready();
      await Promise.all([restarted, started]);
      expect(spawner.children).toHaveLength(2);
    });

    it('a start during the backoff wait spawns at once', () => {
      const { spawner, supervisor } = setup();
      void supervisor.start();
      spawner.last.exit(1);
      expect(supervisor.snapshot().state).toBe('restarting');
      void supervisor.start();
      expect(spawner.children).toHaveLength(2);
    });
  });
});
