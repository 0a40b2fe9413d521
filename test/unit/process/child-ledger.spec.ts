import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConsoleLogger, Logger } from '@nestjs/common';

import { FileChildLedger } from '../../../src/plugins/process/child-ledger';
import type { HostProcess } from '../../../src/plugins/process/host-process';
import { PLUGIN_TAG_VARIABLE } from '../../../src/plugins/process/plugin-process-tracker';
import { LinuxProcTable } from '../../../src/plugins/process/proc-table';
import { FakeProc } from './fake-proc';
import { hostProcess } from './host-process.fixture';

/** A fake /proc: `stat` files whose field 22 (start time) we choose. */
function fakeProc(root: string, pid: number, startTime: string): void {
  mkdirSync(join(root, String(pid)), { recursive: true });
  const fields = ['S', '1', String(pid), String(pid), ...Array<string>(15).fill('0'), startTime];
  writeFileSync(
    join(root, String(pid), 'stat'),
    `${pid} (node) ) odd name) ${fields.join(' ')} 0 0`,
  );
}

const TAG = 'c'.repeat(32);

describe('ChildLedger', () => {
  let dir: string;
  let proc: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-ledger-'));
    proc = join(dir, 'proc');
    file = join(dir, 'children.json');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A host on this machine, pid 50 (not in the fake /proc: an earlier host has exited). */
  const ledgerOn = (root: string, ledgerFile = file, self = hostProcess()): FileChildLedger =>
    new FileChildLedger(ledgerFile, new LinuxProcTable(root), self);
  const children = (): unknown =>
    (JSON.parse(readFileSync(file, 'utf8')) as { children: unknown }).children;

  const killer = (alive: Set<number>) => {
    const calls: [number, string][] = [];
    const kill = (pid: number, signal: string): true => {
      calls.push([pid, signal]);
      if (!alive.has(-pid)) throw Object.assign(new Error('no such group'), { code: 'ESRCH' });
      return true;
    };
    return { calls, kill };
  };

  it('records started groups with their leader start time, and forgets ended ones', () => {
    fakeProc(proc, 101, '5000');
    fakeProc(proc, 102, '5001');
    const ledger = ledgerOn(proc);
    ledger.add('echo', 101);
    ledger.add('board', 102);
    ledger.remove(101);
    expect(children()).toEqual([{ plugin: 'board', pid: 102, startTime: '5001' }]);
    // Once every group has ended (a clean shutdown), no file is left behind.
    ledger.remove(102);
    expect(existsSync(file)).toBe(false);
  });

  it('does not record a process that is already gone', () => {
    ledgerOn(proc).add('echo', 103);
    expect(existsSync(file)).toBe(false);
  });

  it('ends the groups of an earlier run whose leader is the same process, then forgets them', () => {
    fakeProc(proc, 101, '5000');
    ledgerOn(proc).add('echo', 101);
    const { calls, kill } = killer(new Set([101]));
    const reaped = ledgerOn(proc).reapEarlierRun(kill);
    expect(reaped).toEqual([{ plugin: 'echo', pid: 101, kind: 'group' }]);
    expect(calls).toEqual([[-101, 'SIGKILL']]);
    expect(existsSync(file)).toBe(false);
  });

  it('leaves alone a process that now has a recorded id but started at another time', () => {
    fakeProc(proc, 101, '5000');
    ledgerOn(proc).add('echo', 101);
    fakeProc(proc, 101, '9999'); // the id was given to another process
    const { calls, kill } = killer(new Set([101]));
    expect(ledgerOn(proc).reapEarlierRun(kill)).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('ends what remains of a group whose leader is gone, and skips groups that ended', () => {
    fakeProc(proc, 101, '5000');
    fakeProc(proc, 102, '5001');
    const first = ledgerOn(proc);
    first.add('echo', 101);
    first.add('board', 102);
    rmSync(join(proc, '101'), { recursive: true });
    rmSync(join(proc, '102'), { recursive: true });
    const { calls, kill } = killer(new Set([101])); // only group 101 still has members
    const reaped = ledgerOn(proc).reapEarlierRun(kill);
    expect(reaped.map((e) => e.plugin)).toEqual(['echo']);
    expect(calls).toEqual([
      [-101, 'SIGKILL'],
      [-102, 'SIGKILL'],
    ]);
  });

  it('records the tag of each server', () => {
    fakeProc(proc, 101, '5000');
    ledgerOn(proc).add('echo', 101, TAG);
    expect(children()).toEqual([{ plugin: 'echo', pid: 101, startTime: '5000', tag: TAG }]);
  });

  it('records its owner: the host process that started them', () => {
    fakeProc(proc, 101, '5000');
    const self = hostProcess({ pid: 50, startTime: '4000' });
    ledgerOn(proc, file, self).add('echo', 101);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ owner: self });
  });

  it('also ends what left the group: tagged setsid escapees and members of the session', () => {
    const fake = new FakeProc(join(dir, 'proc2'));
    fake.add({ pid: 101, startTime: '5000' });
    ledgerOn(fake.root).add('echo', 101, TAG);
    fake.add({ pid: 110, env: { [PLUGIN_TAG_VARIABLE]: TAG } }); // double-forked, setsid
    fake.add({ pid: 111, ppid: 110, pgid: 110, sid: 110 }); // its env-less child
    fake.add({ pid: 102, pgid: 102, sid: 101 }); // setpgid(): out of the group, in the session
    fake.add({ pid: 120, env: { [PLUGIN_TAG_VARIABLE]: 'b'.repeat(32) } }); // not ours
    fake.add({ pid: 121 });
    const reaped = ledgerOn(fake.root).reapEarlierRun(fake.kill);
    expect(reaped).toEqual(
      expect.arrayContaining([
        { plugin: 'echo', pid: 101, kind: 'group' },
        { plugin: 'echo', pid: 102, kind: 'escapee' },
        { plugin: 'echo', pid: 110, kind: 'escapee' },
        { plugin: 'echo', pid: 111, kind: 'escapee' },
      ]),
    );
    expect(reaped).toHaveLength(4);
    expect(fake.pids()).toEqual([120, 121]);
  });

  it('ends tagged escapees even when the recorded leader’s pid belongs to another process now', () => {
    const fake = new FakeProc(join(dir, 'proc2'));
    fake.add({ pid: 101, startTime: '5000' });
    ledgerOn(fake.root).add('echo', 101, TAG);
    fake.remove(101);
    fake.add({ pid: 101, startTime: '9999' }); // reused
    fake.add({ pid: 110, env: { [PLUGIN_TAG_VARIABLE]: TAG } });
    expect(ledgerOn(fake.root).reapEarlierRun(fake.kill)).toEqual([
      { plugin: 'echo', pid: 110, kind: 'escapee' },
    ]);
    expect(fake.pids()).toEqual([101]);
  });

  it('trusts nothing in an unreadable or malformed file', () => {
    writeFileSync(
      file,
      JSON.stringify({
        children: [
          { plugin: 'x', pid: 1, startTime: '1' },
          { pid: '7' },
          { plugin: 'y', pid: 8, startTime: '800', tag: '' }, // an empty tag would match anything
        ],
      }),
    );
    const { calls, kill } = killer(new Set([1, 7, 8]));
    expect(ledgerOn(proc).reapEarlierRun(kill)).toEqual([]);
    writeFileSync(file, 'not json');
    expect(ledgerOn(proc).reapEarlierRun(kill)).toEqual([]);
    expect(calls).toEqual([]);
  });
});

describe('ChildLedger: whose processes it ends', () => {
  let dir: string;
  let proc: FakeProc;
  let file: string;
  let warn: jest.SpyInstance;
  let error: jest.SpyInstance;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-ledger-owner-'));
    proc = new FakeProc(join(dir, 'proc'));
    file = join(dir, 'children.json');
    proc.add({ pid: 101, startTime: '5000' }); // a plugin server
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });
  const logged = (spy: jest.SpyInstance): unknown[] =>
    spy.mock.calls.map(([line]) => (line as { event?: unknown }).event);

  const ledger = (self: HostProcess): FileChildLedger =>
    new FileChildLedger(file, new LinuxProcTable(proc.root), self);
  /** The ledger `owner` wrote with plugin 101 running. */
  const recordedBy = (owner: HostProcess): void => ledger(owner).add('echo', 101);
  const next = hostProcess({ pid: 60 });

  it('ends what an owner that has exited left running', () => {
    recordedBy(hostProcess({ pid: 40, startTime: '4000' })); // pid 40 is not in the table
    expect(ledger(next).reapEarlierRun(proc.kill)).toEqual([
      { plugin: 'echo', pid: 101, kind: 'group' },
    ]);
    expect(proc.has(101)).toBe(false);
  });

  it('ends them when the owner’s pid now names another process', () => {
    proc.add({ pid: 40, startTime: '4999' });
    recordedBy(hostProcess({ pid: 40, startTime: '4000' }));
    expect(ledger(next).reapEarlierRun(proc.kill)).toHaveLength(1);
    expect(proc.has(101)).toBe(false);
  });

  it('never ends the plugins of an owner that still runs, and keeps its file', () => {
    proc.add({ pid: 40, startTime: '4000' });
    recordedBy(hostProcess({ pid: 40, startTime: '4000' }));
    expect(ledger(next).reapEarlierRun(proc.kill)).toEqual([]);
    expect(proc.signals).toEqual([]);
    expect(existsSync(file)).toBe(true);
    expect(logged(error)).toEqual(['child_ledger_owner_running']);
  });

  it.each([
    ['on another machine', { bootId: 'boot-of-another-machine' }],
    ['in another container (pid namespace)', { pidNamespace: 'pid:[4026532999]' }],
    ['whose boot or namespace is unknown', { bootId: undefined }],
  ])(
    'signals nothing for an owner %s (its pids name nothing here), and drops the file',
    (_, where) => {
      recordedBy(hostProcess({ pid: 40, startTime: '4000', ...where }));
      expect(ledger(next).reapEarlierRun(proc.kill)).toEqual([]);
      expect(proc.signals).toEqual([]);
      expect(proc.has(101)).toBe(true);
      expect(existsSync(file)).toBe(false);
      expect(logged(warn)).toEqual(['child_ledger_out_of_sight']);
    },
  );

  it('signals nothing when the owner cannot be read', () => {
    recordedBy(hostProcess({ pid: 40 }));
    const body = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...body, owner: { pid: 'forty' } }));
    expect(ledger(next).reapEarlierRun(proc.kill)).toEqual([]);
    expect(proc.signals).toEqual([]);
    expect(logged(error)).toEqual(['child_ledger_owner_unreadable']);
  });

  it('ends what a file of an older version (no owner) lists, as before', () => {
    writeFileSync(
      file,
      JSON.stringify({ children: [{ plugin: 'echo', pid: 101, startTime: '5000' }] }),
    );
    expect(ledger(next).reapEarlierRun(proc.kill)).toEqual([
      { plugin: 'echo', pid: 101, kind: 'group' },
    ]);
  });
});

describe('ChildLedger in a folder it cannot write', () => {
  let dir: string;
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-ledger-ro-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps working (best effort) instead of failing the spawn', () => {
    const proc = join(dir, 'proc');
    fakeProc(proc, 101, '5000');
    const ledger = new FileChildLedger(
      join(dir, 'missing-folder', 'children.json'),
      new LinuxProcTable(proc),
      hostProcess(),
    );
    expect(() => ledger.add('echo', 101)).not.toThrow();
    expect(() => ledger.remove(101)).not.toThrow();
    expect(existsSync(join(dir, 'missing-folder'))).toBe(false);
  });
});
