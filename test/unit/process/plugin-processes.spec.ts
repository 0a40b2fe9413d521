import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PluginProcessRecord, processesOf } from '../../../src/plugins/process/plugin-processes';
import {
  environValue,
  LinuxProcTable,
  parseStat,
  ProcEntry,
} from '../../../src/plugins/process/proc-table';
import { FakeProc } from './fake-proc';

const HOST = 50;
const TAG = 'a'.repeat(32);

/** A process table entry; ids default to a leader of its own group and session under PID 1. */
const p = (pid: number, o: Partial<ProcEntry> = {}): ProcEntry => ({
  pid,
  ppid: 1,
  pgid: pid,
  sid: pid,
  startTime: `${pid}00`,
  zombie: false,
  ...o,
});

const record = (o: Partial<PluginProcessRecord> = {}): PluginProcessRecord => ({
  leader: { pid: 100, startTime: '10000' },
  tag: TAG,
  known: new Map(),
  ...o,
});

const pidsOf = (entries: ProcEntry[]): number[] => entries.map((e) => e.pid).sort((a, b) => a - b);

describe('processesOf (which processes belong to a plugin server)', () => {
  const unrelated = [p(1, { ppid: 0 }), p(HOST, { ppid: 1 }), p(60, { ppid: HOST }), p(61)];

  it('the leader, its children, its group and its session', () => {
    const table = [
      ...unrelated,
      p(100, { ppid: HOST }),
      p(101, { ppid: 100, pgid: 100, sid: 100 }), // a child in the group
      p(102, { ppid: 101, pgid: 102, sid: 100 }), // setpgid(): own group, same session
      p(103, { ppid: 100, pgid: 103, sid: 103 }), // setsid(), parent still alive
      p(104, { ppid: 103, pgid: 103, sid: 103 }), // its child
    ];
    expect(pidsOf(processesOf(table, record(), HOST))).toEqual([100, 101, 102, 103, 104]);
  });

  it('a double-forked setsid grandchild (parent PID 1, own session): only by its tag', () => {
    const table = [...unrelated, p(100, { ppid: HOST }), p(110), p(111, { ppid: 110, pgid: 110 })];
    const tags = new Map([[110, TAG]]);
    expect(pidsOf(processesOf(table, record(), HOST))).toEqual([100]);
    expect(pidsOf(processesOf(table, record(), HOST, (pid) => tags.get(pid)))).toEqual([
      100,
      110,
      111, // the tagged one and, through its group, its untagged child
    ]);
  });

  it('another plugin’s tag, or none, is not ours', () => {
    const table = [...unrelated, p(110), p(111)];
    const tags = new Map([
      [110, 'b'.repeat(32)],
      [111, undefined],
    ]);
    expect(processesOf(table, record(), HOST, (pid) => tags.get(pid))).toEqual([]);
  });

  it('a known process that cleared its environment and left the tree, while its pid is its own', () => {
    const table = [...unrelated, p(120, { startTime: '777' }), p(121, { ppid: 120, pgid: 120 })];
    const known = new Map([[120, '777']]);
    expect(pidsOf(processesOf(table, record({ known }), HOST))).toEqual([120, 121]);
    // The pid now names another process (another start time): not ours, nor its group.
    const reused = new Map([[120, '666']]);
    expect(processesOf(table, record({ known: reused }), HOST)).toEqual([]);
  });

  it('the group and session of an exited leader, unless its pid was given to another process', () => {
    const orphans = [p(101, { pgid: 100, sid: 100 }), p(102, { pgid: 102, sid: 100 })];
    expect(pidsOf(processesOf([...unrelated, ...orphans], record(), HOST))).toEqual([101, 102]);
    // pid 100 is now an unrelated process (other start time) leading its own group.
    const reused = [p(100, { startTime: '99999' }), p(105, { pgid: 100, sid: 100 })];
    expect(processesOf([...unrelated, ...reused], record(), HOST)).toEqual([]);
  });

  it('never the host itself or PID 1, even when they carry the tag', () => {
    const table = [...unrelated, p(100, { ppid: HOST })];
    const everyoneTagged = (): string => TAG;
    expect(pidsOf(processesOf(table, record(), HOST, everyoneTagged))).toEqual([60, 61, 100]);
    expect(pidsOf(processesOf(table, record(), HOST))).toEqual([100]);
  });

  it('reads no environment of a zombie or of a process already found through the tree', () => {
    const table = [p(100, { ppid: HOST }), p(101, { ppid: 100, pgid: 100, sid: 100 })];
    const asked: number[] = [];
    const zombie = p(130, { zombie: true });
    processesOf([...table, zombie, p(131)], record(), HOST, (pid) => {
      asked.push(pid);
      return undefined;
    });
    expect(asked).toEqual([131]);
  });
});

describe('LinuxProcTable', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'portico-proc-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lists processes with ids, start time and zombie state from stat', () => {
    const proc = new FakeProc(dir);
    proc.add({ pid: 7, ppid: 3, pgid: 4, sid: 5, startTime: '123' });
    proc.add({ pid: 8, state: 'Z' });
    writeFileSync(join(dir, 'self'), 'not a pid');
    const table = new LinuxProcTable(dir);
    expect(table.list().sort((a, b) => a.pid - b.pid)).toEqual([
      { pid: 7, ppid: 3, pgid: 4, sid: 5, startTime: '123', zombie: false },
      { pid: 8, ppid: 1, pgid: 8, sid: 8, startTime: '800', zombie: true },
    ]);
    expect(table.get(9)).toBeUndefined();
  });

  it('reads one variable of a process’s environment, exactly', () => {
    const proc = new FakeProc(dir);
    proc.add({ pid: 7, env: { XPORTICO_PLUGIN_TAG: 'no', A: 'PORTICO_PLUGIN_TAG=no', B: '' } });
    proc.add({ pid: 8, env: { PATH: '/bin', PORTICO_PLUGIN_TAG: TAG } });
    const table = new LinuxProcTable(dir);
    expect(table.environ(7, 'PORTICO_PLUGIN_TAG')).toBeUndefined();
    expect(table.environ(7, 'B')).toBe('');
    expect(table.environ(8, 'PORTICO_PLUGIN_TAG')).toBe(TAG);
    expect(table.environ(9, 'PORTICO_PLUGIN_TAG')).toBeUndefined();
  });

  it('lists a process’s children from its threads’ children lists', () => {
    const proc = new FakeProc(dir);
    proc.add({ pid: 7 });
    proc.add({ pid: 8, ppid: 7 });
    proc.add({ pid: 9, ppid: 7 });
    const table = new LinuxProcTable(dir);
    expect(table.children(7)?.sort()).toEqual([8, 9]);
    expect(table.children(8)).toEqual([]);
    expect(table.children(10)).toEqual([]); // gone
    const bare = new FakeProc(join(dir, 'bare'), false);
    bare.add({ pid: 7 });
    expect(new LinuxProcTable(bare.root).children(7)).toBeUndefined();
  });

  it('finds nothing where there is no /proc', () => {
    expect(new LinuxProcTable(join(dir, 'missing')).list()).toEqual([]);
  });

  it('parses the fields after the last `)` and refuses what is not a stat line', () => {
    expect(parseStat(5, '5 (a) b) R 1 2 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 42 0')).toMatchObject({
      ppid: 1,
      pgid: 2,
      sid: 3,
      startTime: '42',
    });
    expect(parseStat(5, 'garbage')).toBeUndefined();
    expect(parseStat(5, '5 (a) R 1 2')).toBeUndefined();
    expect(environValue(Buffer.from('A=1'), 'A')).toBe('1'); // no trailing NUL
  });
});
