import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  holderState,
  HostProcess,
  parseHostProcess,
  readHostProcess,
} from '../../../src/plugins/process/host-process';
import type { ProcEntry, ProcTable } from '../../../src/plugins/process/proc-table';
import { hostProcess } from './host-process.fixture';

describe('holderState (can the recorded host be seen, and does it run?)', () => {
  const me = hostProcess({ pid: 60 });
  const running = new Set(['40@4000']);
  const isRunning = (pid: number, start: string): boolean => running.has(`${pid}@${start}`);

  it('is `self` for this very application instance', () => {
    expect(holderState(me, me, () => false)).toBe('self');
  });

  it('looks a holder on this machine and in this pid namespace up by pid and start time', () => {
    expect(holderState(hostProcess({ pid: 40, startTime: '4000' }), me, isRunning)).toBe('running');
    expect(holderState(hostProcess({ pid: 40, startTime: '3999' }), me, isRunning)).toBe('exited');
    expect(holderState(hostProcess({ pid: 41, startTime: '4000' }), me, isRunning)).toBe('exited');
    expect(holderState(hostProcess({ pid: 40, startTime: undefined }), me, isRunning)).toBe(
      'exited',
    );
  });

  it('treats another app instance in this same process as a running holder', () => {
    const sibling = { ...me, instance: 'f'.repeat(32), startTime: '6000' };
    expect(holderState(sibling, me, (pid) => pid === 60)).toBe('running');
  });

  it.each<[string, Partial<HostProcess>]>([
    ['another machine', { bootId: 'boot-b' }],
    ['an earlier boot of this machine', { bootId: 'boot-0' }],
    ['another container on this machine', { pidNamespace: 'pid:[4026532001]' }],
    ['a host whose boot id is unknown', { bootId: undefined }],
    ['a host whose pid namespace is unknown', { pidNamespace: undefined }],
  ])('never looks up the pid of %s: out of sight', (_, where) => {
    const holder = hostProcess({ pid: 40, startTime: '4000', ...where });
    expect(holderState(holder, me, isRunning)).toBe('out-of-sight');
  });

  it('is out of sight when this host itself cannot tell its boot or namespace', () => {
    const blind = hostProcess({ pid: 60, bootId: undefined });
    expect(holderState(hostProcess({ pid: 40, startTime: '4000' }), blind, isRunning)).toBe(
      'out-of-sight',
    );
  });
});

describe('parseHostProcess (a holder read from a file)', () => {
  it('round-trips what JSON makes of a HostProcess', () => {
    const host = hostProcess({ bootId: undefined });
    expect(parseHostProcess(JSON.parse(JSON.stringify(host)))).toEqual(host);
  });

  it.each([
    ['no object', 'x'],
    ['a pid that is not a positive integer', { pid: 0 }],
    ['a start time that is not a number', { startTime: '12a' }],
    ['an instance id that is not 128 bits of hex', { instance: 'abc' }],
    ['an empty boot id', { bootId: '' }],
  ])('refuses %s', (_, change) => {
    const value = typeof change === 'string' ? change : { ...hostProcess(), ...change };
    expect(parseHostProcess(value)).toBeUndefined();
  });
});

describe('readHostProcess (this host, from /proc)', () => {
  let root: string;
  const table = (startTime: string | undefined): ProcTable => ({
    list: () => [],
    get: (pid) =>
      pid === process.pid && startTime !== undefined
        ? ({ pid, ppid: 1, pgid: pid, sid: pid, startTime, zombie: false } satisfies ProcEntry)
        : undefined,
    environ: () => undefined,
    children: () => [],
  });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'portico-host-proc-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads the boot id, the pid namespace and its own start time', () => {
    mkdirSync(join(root, 'sys/kernel/random'), { recursive: true });
    writeFileSync(join(root, 'sys/kernel/random/boot_id'), 'b00t-1d\n');
    mkdirSync(join(root, 'self/ns'), { recursive: true });
    symlinkSync('pid:[4026531836]', join(root, 'self/ns/pid'));
    const host = readHostProcess(table('777'), root);
    expect(host).toMatchObject({
      hostname: hostname(),
      bootId: 'b00t-1d',
      pidNamespace: 'pid:[4026531836]',
      pid: process.pid,
      startTime: '777',
    });
    expect(host.instance).toMatch(/^[0-9a-f]{32}$/);
  });

  it('leaves out what it cannot read, and every call is a new instance', () => {
    const a = readHostProcess(table(undefined), root);
    const b = readHostProcess(table(undefined), root);
    expect(a).toMatchObject({ bootId: undefined, pidNamespace: undefined, startTime: undefined });
    expect(a.instance).not.toBe(b.instance);
  });
});
