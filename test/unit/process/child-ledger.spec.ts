import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConsoleLogger, Logger } from '@nestjs/common';

import { ChildLedger } from '../../../src/plugins/process/child-ledger';

/** A fake /proc: `stat` files whose field 22 (start time) we choose. */
function fakeProc(root: string, pid: number, startTime: string): void {
  mkdirSync(join(root, String(pid)), { recursive: true });
  const fields = ['S', '1', String(pid), String(pid), ...Array<string>(15).fill('0'), startTime];
  writeFileSync(
    join(root, String(pid), 'stat'),
    `${pid} (node) ) odd name) ${fields.join(' ')} 0 0`,
  );
}

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
    const ledger = new ChildLedger(file, proc);
    ledger.add('echo', 101);
    ledger.add('board', 102);
    ledger.remove(101);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      children: [{ plugin: 'board', pid: 102, startTime: '5001' }],
    });
    // Once every group has ended (a clean shutdown), no file is left behind.
    ledger.remove(102);
    expect(existsSync(file)).toBe(false);
  });

  it('does not record a process that is already gone', () => {
    new ChildLedger(file, proc).add('echo', 103);
    expect(existsSync(file)).toBe(false);
  });

  it('ends the groups of an earlier run whose leader is the same process, then forgets them', () => {
    fakeProc(proc, 101, '5000');
    new ChildLedger(file, proc).add('echo', 101);
    const { calls, kill } = killer(new Set([101]));
    const reaped = new ChildLedger(file, proc).reapEarlierRun(kill);
    expect(reaped).toEqual([{ plugin: 'echo', pid: 101, startTime: '5000' }]);
    expect(calls).toEqual([[-101, 'SIGKILL']]);
    expect(existsSync(file)).toBe(false);
  });

  it('leaves alone a process that now has a recorded id but started at another time', () => {
    fakeProc(proc, 101, '5000');
    new ChildLedger(file, proc).add('echo', 101);
    fakeProc(proc, 101, '9999'); // the id was given to another process
    const { calls, kill } = killer(new Set([101]));
    expect(new ChildLedger(file, proc).reapEarlierRun(kill)).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('ends what remains of a group whose leader is gone, and skips groups that ended', () => {
    fakeProc(proc, 101, '5000');
    fakeProc(proc, 102, '5001');
    const first = new ChildLedger(file, proc);
    first.add('echo', 101);
    first.add('board', 102);
    rmSync(join(proc, '101'), { recursive: true });
    rmSync(join(proc, '102'), { recursive: true });
    const { calls, kill } = killer(new Set([101])); // only group 101 still has members
    const reaped = new ChildLedger(file, proc).reapEarlierRun(kill);
    expect(reaped.map((e) => e.plugin)).toEqual(['echo']);
    expect(calls).toEqual([
      [-101, 'SIGKILL'],
      [-102, 'SIGKILL'],
    ]);
  });

  it('trusts nothing in an unreadable or malformed file', () => {
    writeFileSync(file, '{"children":[{"plugin":"x","pid":1,"startTime":"1"},{"pid":"7"}]');
    const { calls, kill } = killer(new Set([1, 7]));
    expect(new ChildLedger(file, proc).reapEarlierRun(kill)).toEqual([]);
    writeFileSync(file, 'not json');
    expect(new ChildLedger(file, proc).reapEarlierRun(kill)).toEqual([]);
    expect(calls).toEqual([]);
  });
});

describe('ChildLedger in a folder it cannot write', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  it('keeps working (best effort) instead of failing the spawn', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-ledger-ro-'));
    const proc = join(dir, 'proc');
    fakeProc(proc, 101, '5000');
    const ledger = new ChildLedger(join(dir, 'missing-folder', 'children.json'), proc);
    expect(() => ledger.add('echo', 101)).not.toThrow();
    expect(() => ledger.remove(101)).not.toThrow();
    rmSync(dir, { recursive: true, force: true });
  });
});
