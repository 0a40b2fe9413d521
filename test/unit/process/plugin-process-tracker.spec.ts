import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  PLUGIN_TAG_VARIABLE,
  PluginProcessTracker,
  TrackerOptions,
} from '../../../src/plugins/process/plugin-process-tracker';
import { LinuxProcTable, ProcEntry, ProcTable } from '../../../src/plugins/process/proc-table';
import { FakeClock } from '../../helpers/fake-clock';
import { FakeProc } from './fake-proc';

const HOST = 50;
const TAG = 'f'.repeat(32);
const OTHER_TAG = '0'.repeat(32);
const tagged = { [PLUGIN_TAG_VARIABLE]: TAG, PATH: '/bin' };

/** Counts the passes over the table, the processes and the environments read. */
class CountingTable implements ProcTable {
  public lists = 0;
  public gets = 0;
  public environs = 0;
  public constructor(private readonly inner: ProcTable) {}
  public list(): ProcEntry[] {
    this.lists += 1;
    return this.inner.list();
  }
  public get(pid: number): ProcEntry | undefined {
    this.gets += 1;
    return this.inner.get(pid);
  }
  public children(pid: number): number[] | undefined {
    return this.inner.children(pid);
  }
  public environ(pid: number, name: string): string | undefined {
    this.environs += 1;
    return this.inner.environ(pid, name);
  }
}

describe('PluginProcessTracker', () => {
  let dir: string;
  let proc: FakeProc;
  let table: CountingTable;
  let clock: FakeClock;

  const tracker = (options: Partial<TrackerOptions> = {}): PluginProcessTracker =>
    new PluginProcessTracker(table, proc.kill, clock, async (ms) => clock.advance(ms), HOST, {
      observeEveryMs: 2000,
      sweepTimeoutMs: 2000,
      sweepPollMs: 20,
      ...options,
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-tracker-'));
    proc = new FakeProc(join(dir, 'proc'));
    table = new CountingTable(new LinuxProcTable(proc.root));
    clock = new FakeClock();
    proc.add({ pid: 1, ppid: 0 });
    proc.add({ pid: HOST });
    proc.add({ pid: 100, ppid: HOST, env: tagged }); // the plugin server
    proc.add({ pid: 101, ppid: 100, pgid: 100, sid: 100, env: tagged }); // in its group
    proc.add({ pid: 300, env: { [PLUGIN_TAG_VARIABLE]: OTHER_TAG } }); // another plugin's
    proc.add({ pid: 301 }); // anything else
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('at the end: kills the group and a tagged setsid grandchild of PID 1, and nothing else', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 110, env: tagged }); // double-forked, setsid, re-parented to PID 1
    proc.remove(100); // the server exits
    const report = await t.end(server);
    expect(report).toEqual({ escapees: [110], survivors: [] });
    expect(proc.pids()).toEqual([1, HOST, 300, 301]);
    expect(proc.signals[0]).toEqual([-100, 'SIGKILL']);
  });

  it('remembers an env-less child while its parent lives, and kills it after it escaped', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 120, ppid: 100, env: {} }); // detached (setsid) with an empty environment
    clock.advance(2000); // one periodic look sees it in the tree
    proc.remove(100); // the server crashes: 120 is re-parented to PID 1
    proc.add({ pid: 120, ppid: 1, env: {} });
    proc.add({ pid: 121, ppid: 1, pgid: 120, sid: 120, env: {} }); // its orphaned child
    expect(await t.end(server)).toEqual({ escapees: [120, 121], survivors: [] });
    expect(proc.has(120) || proc.has(121)).toBe(false);
  });

  it('does not mistake a reused pid for a remembered process', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 120, ppid: 100, env: {} });
    clock.advance(2000);
    proc.remove(120);
    proc.add({ pid: 120, ppid: 1, startTime: '999999', env: {} }); // someone else's now
    proc.remove(100);
    expect(await t.end(server)).toEqual({ escapees: [], survivors: [] });
    expect(proc.has(120)).toBe(true);
  });

  it('a stop tells what left the group (SIGTERM) and remembers it, but not the group itself', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 130, ppid: 100, env: {}, stuck: true }); // env-less, ignores signals for now
    t.signalEscapees(server, 'SIGTERM');
    expect(proc.signals).toEqual([[130, 'SIGTERM']]);
    proc.remove(100);
    proc.remove(101);
    proc.add({ pid: 130, ppid: 1, env: {} }); // no longer stuck, re-parented
    expect(await t.end(server)).toEqual({ escapees: [130], survivors: [] });
    expect(proc.has(130)).toBe(false);
  });

  it('looks again until nothing is left: a process forked during the sweep is killed too', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 110, env: tagged });
    proc.onKill = (pid) => {
      if (pid === 110) proc.add({ pid: 111, env: tagged }); // forked just before it died
    };
    proc.remove(100);
    expect(await t.end(server)).toEqual({ escapees: [110, 111], survivors: [] });
    expect(proc.pids()).toEqual([1, HOST, 300, 301]);
    expect(table.lists).toBe(3); // found 101 and 110; found 111; found none
  });

  it('gives up after sweepTimeoutMs and reports what it could not kill', async () => {
    const t = tracker({ sweepTimeoutMs: 100, sweepPollMs: 20 });
    const server = t.track(100, TAG);
    proc.add({ pid: 140, env: tagged, stuck: true });
    proc.remove(100);
    expect(await t.end(server)).toEqual({ escapees: [140], survivors: [140] });
    expect(table.lists).toBe(6); // bounded: one look per poll until the deadline
  });

  it('skips zombies: they are already dead', async () => {
    const t = tracker();
    const server = t.track(100, TAG);
    proc.add({ pid: 100, ppid: HOST, state: 'Z' }); // exited, not reaped yet
    proc.remove(101);
    expect(await t.end(server)).toEqual({ escapees: [], survivors: [] });
  });

  it('a periodic look reads only the plugin’s own processes, and no environment', () => {
    for (let pid = 400; pid < 500; pid++) proc.add({ pid }); // a busy machine
    const t = tracker();
    t.track(100, TAG);
    table.gets = 0;
    clock.advance(10_000);
    expect(table.lists).toBe(0);
    expect(table.gets).toBe(5 * 2); // 100 and 101, five times
    expect(table.environs).toBe(0);
  });

  it('on a kernel without children lists, a periodic look is one pass over the table', async () => {
    const bare = new FakeProc(join(dir, 'bare'), false);
    table = new CountingTable(new LinuxProcTable(bare.root));
    bare.add({ pid: 100, ppid: HOST, env: tagged });
    bare.add({ pid: 120, ppid: 100, env: {} });
    const t = new PluginProcessTracker(
      table,
      bare.kill,
      clock,
      async (ms) => clock.advance(ms),
      HOST,
    );
    const server = t.track(100, TAG);
    clock.advance(2000);
    expect(table.lists).toBe(1);
    bare.remove(100);
    bare.add({ pid: 120, ppid: 1, env: {} }); // re-parented: known from the look
    expect(await t.end(server)).toEqual({ escapees: [120], survivors: [] });
  });

  it('looks only while servers run: no timer is left once the last one ended', async () => {
    const t = tracker();
    const a = t.track(100, TAG);
    expect(clock.pendingTimers).toBe(1);
    proc.remove(100);
    await t.end(a);
    expect(clock.pendingTimers).toBe(0);
    clock.advance(10_000);
    expect(table.lists).toBe(1); // the sweep's own look only
    // Ending twice, or a stop after the end, does nothing.
    expect(await t.end(a)).toEqual({ escapees: [], survivors: [] });
    t.signalEscapees(a, 'SIGTERM');
    expect(table.lists).toBe(1);
  });
});
