import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

import { Logger } from '@nestjs/common';

import { holderState, HostProcess, parseHostProcess, runningIn } from './host-process';
import { processesOf } from './plugin-processes';
import { Kill, PLUGIN_TAG_VARIABLE } from './plugin-process-tracker';
import type { ProcTable } from './proc-table';

/** File in DATA_DIR listing the plugin process groups of the running host. */
export const CHILD_LEDGER_FILE = 'children.json';

/** One plugin process group this host started. */
export interface LedgerEntry {
  readonly plugin: string;
  /** Process id of the group leader, which is also the process group id. */
  readonly pid: number;
  /** The leader's start time (clock ticks since boot, /proc/<pid>/stat field 22). */
  readonly startTime: string;
  /** The server's PLUGIN_TAG_VARIABLE value (absent in files of older versions). */
  readonly tag?: string;
}

/** A process ended by `reapEarlierRun`. */
export interface ReapedProcess {
  readonly plugin: string;
  readonly pid: number;
  /** `group`: a recorded process group; `escapee`: a process of it found outside the group. */
  readonly kind: 'group' | 'escapee';
}

/** Tags are 128 random bits in hex; anything else in the file is not trusted as one. */
const TAG = /^[0-9a-f]{32}$/;

interface LedgerFile {
  /** The host that started them (absent in files of older versions). */
  owner?: HostProcess;
  children: LedgerEntry[];
}

/** The plugin process groups a host has started, kept so a later host can end what it left. */
export interface ChildLedger {
  /** Records a plugin server just spawned (leader of its own process group). */
  add(plugin: string, pid: number, tag?: string): void;
  /** Forgets a server whose processes have all ended. */
  remove(pid: number): void;
  /**
   * At startup, before any plugin runs: ends what an earlier host on this DATA_DIR left
   * running, and returns what it ended. Call only while holding the DATA_DIR lock.
   */
  reapEarlierRun(kill?: Kill): ReapedProcess[];
}

/** Injection token of the ChildLedger. */
export const CHILD_LEDGER = Symbol('CHILD_LEDGER');

/**
 * The plugin process groups this host has started and not yet seen end, written to DATA_DIR,
 * so that a host that was killed without its shutdown hooks (SIGKILL, the OOM killer, a crash)
 * can end what it left behind when it starts again. Plugins run in their own process groups and
 * do not notice their host's death, so without this they would keep running (and keep their
 * ports) until someone kills them by hand.
 *
 * The file names its owner (HostProcess). What an owner left is ended only when it has exited
 * and its pids are this host's to look at (same boot, same pid namespace): a live owner's
 * plugins are never touched (only possible when the DATA_DIR lock could not be taken), and the
 * pids of an owner on another machine, in another container or before a reboot are not ours
 * to signal (they may name unrelated processes here).
 *
 * A group is ended only while it is provably the one recorded: its leader still has the
 * recorded start time, or the leader is gone and processes of the group remain (Linux does not
 * hand out a process id again while a group still uses it as its id). Then one look at the
 * process table ends what left the group: processes carrying a recorded tag in their
 * environment, and the members of the leader's session (see processesOf).
 */
export class FileChildLedger implements ChildLedger {
  private readonly logger = new Logger('ChildLedger');
  private readonly entries = new Map<number, LedgerEntry>();
  private warned = false;

  public constructor(
    private readonly file: string,
    private readonly table: ProcTable,
    /** This host: written as the owner; its own pid is never ended. */
    private readonly self: HostProcess,
  ) {}

  public add(plugin: string, pid: number, tag?: string): void {
    const startTime = this.table.get(pid)?.startTime;
    if (startTime === undefined) return; // already gone: nothing to leave behind
    this.entries.set(pid, { plugin, pid, startTime, ...(tag === undefined ? {} : { tag }) });
    this.save();
  }

  public remove(pid: number): void {
    if (this.entries.delete(pid)) this.save();
  }

  /**
   * Ends (SIGKILL) every recorded group of an earlier run that is still there and every process
   * of it found outside its group, forgets the records, and returns what it ended.
   */
  public reapEarlierRun(kill: Kill = (pid, signal) => process.kill(pid, signal)): ReapedProcess[] {
    const { owner, entries } = this.read();
    if (entries.length > 0 && !this.mayEnd(owner, entries)) return [];
    const reaped: ReapedProcess[] = [];
    const signal = (pid: number): boolean => {
      try {
        kill(pid, 'SIGKILL');
        return true;
      } catch {
        return false; // ESRCH: it has ended by itself
      }
    };
    for (const entry of entries) {
      const now = this.table.get(entry.pid)?.startTime;
      if (now !== undefined && now !== entry.startTime) continue; // the id belongs to another process now
      if (signal(-entry.pid)) reaped.push({ plugin: entry.plugin, pid: entry.pid, kind: 'group' });
    }
    if (entries.length > 0) {
      const table = this.table.list();
      const tags = new Map<number, string | undefined>(); // each environment read once
      const tagOf = (pid: number): string | undefined => {
        if (!tags.has(pid)) tags.set(pid, this.table.environ(pid, PLUGIN_TAG_VARIABLE));
        return tags.get(pid);
      };
      for (const entry of entries) {
        const record = { leader: entry, tag: entry.tag, known: new Map<number, string>() };
        for (const e of processesOf(table, record, this.self.pid, tagOf)) {
          if (e.zombie || e.pgid === entry.pid) continue; // the group was ended above
          if (signal(e.pid)) reaped.push({ plugin: entry.plugin, pid: e.pid, kind: 'escapee' });
        }
      }
    }
    this.entries.clear();
    rmSync(this.file, { force: true });
    return reaped;
  }

  /**
   * Whether the processes `owner` recorded may be ended from here. The file is removed when
   * they never can be (an owner out of sight) and kept while its owner may still run.
   */
  private mayEnd(owner: HostProcess | 'unreadable' | undefined, entries: LedgerEntry[]): boolean {
    if (owner === undefined) return true; // a file of an older version: written on this machine
    const plugins = entries.map((e) => ({ plugin: e.plugin, pid: e.pid }));
    if (owner === 'unreadable') {
      this.logger.error({ event: 'child_ledger_owner_unreadable', file: this.file, plugins });
      return false;
    }
    const state = holderState(owner, this.self, runningIn(this.table));
    const who = { hostname: owner.hostname, pid: owner.pid, bootId: owner.bootId };
    if (state === 'exited') return true;
    if (state === 'out-of-sight') {
      this.logger.warn({
        event: 'child_ledger_out_of_sight',
        owner: who,
        plugins,
        consequence:
          'recorded by a host on another machine, in another container or before a reboot:' +
          ' its pids name nothing here; its plugins ended with it or must be ended there',
      });
      this.entries.clear();
      rmSync(this.file, { force: true });
      return false;
    }
    this.logger.error({
      event: 'child_ledger_owner_running',
      owner: who,
      plugins,
      consequence: 'its plugins are left alone; two hosts must not share one DATA_DIR',
    });
    return false;
  }

  private read(): { owner: HostProcess | 'unreadable' | undefined; entries: LedgerEntry[] } {
    let parsed: Partial<LedgerFile>;
    try {
      parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<LedgerFile>;
    } catch {
      return { owner: undefined, entries: [] }; // none, or unreadable: nothing can be proven ours
    }
    const owner =
      parsed.owner === undefined ? undefined : (parseHostProcess(parsed.owner) ?? 'unreadable');
    const entries = (Array.isArray(parsed.children) ? parsed.children : []).filter(
      (e): e is LedgerEntry =>
        typeof e?.plugin === 'string' &&
        Number.isInteger(e.pid) &&
        e.pid > 1 &&
        typeof e.startTime === 'string' &&
        (e.tag === undefined || (typeof e.tag === 'string' && TAG.test(e.tag))),
    );
    return { owner, entries };
  }

  /**
   * Best effort: a DATA_DIR that cannot be written must not keep plugins from running. With
   * nothing running (e.g. after a clean shutdown) the file is removed rather than left empty.
   */
  private save(): void {
    const temp = `${this.file}.${this.self.instance}.tmp`;
    const body: LedgerFile = { owner: this.self, children: [...this.entries.values()] };
    try {
      if (body.children.length === 0) {
        rmSync(this.file, { force: true });
        return;
      }
      writeFileSync(temp, JSON.stringify(body) + '\n', { mode: 0o600 });
      renameSync(temp, this.file);
    } catch (err) {
      if (this.warned) return;
      this.warned = true;
      this.logger.warn({
        event: 'child_ledger_unwritable',
        file: this.file,
        reason: (err as Error).message,
        consequence: 'plugins left running by a killed host will not be ended at the next start',
      });
    }
  }
}
