import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

import { Logger } from '@nestjs/common';

/** One plugin process group this host started. */
export interface LedgerEntry {
  readonly plugin: string;
  /** Process id of the group leader, which is also the process group id. */
  readonly pid: number;
  /** The leader's start time (clock ticks since boot, /proc/<pid>/stat field 22). */
  readonly startTime: string;
}

interface LedgerFile {
  children: LedgerEntry[];
}

/**
 * The plugin process groups this host has started and not yet seen end, written to DATA_DIR,
 * so that a host that was killed without its shutdown hooks (SIGKILL, the OOM killer, a crash)
 * can end what it left behind when it starts again. Plugins run in their own process groups and
 * do not notice their host's death, so without this they would keep running (and keep their
 * ports) until someone kills them by hand.
 *
 * A group is ended only while it is provably the one recorded: its leader still has the
 * recorded start time, or the leader is gone and processes of the group remain (Linux does not
 * hand out a process id again while a group still uses it as its id).
 */
export class ChildLedger {
  private readonly logger = new Logger(ChildLedger.name);
  private readonly entries = new Map<number, LedgerEntry>();
  private warned = false;

  public constructor(
    private readonly file: string,
    private readonly proc = '/proc',
  ) {}

  public add(plugin: string, pid: number): void {
    const startTime = this.startTime(pid);
    if (startTime === undefined) return; // already gone: nothing to leave behind
    this.entries.set(pid, { plugin, pid, startTime });
    this.save();
  }

  public remove(pid: number): void {
    if (this.entries.delete(pid)) this.save();
  }

  /**
   * Ends (SIGKILL) every recorded group of an earlier run that is still there, forgets the
   * rest, and returns the ones it ended.
   */
  public reapEarlierRun(kill = process.kill.bind(process)): LedgerEntry[] {
    const reaped: LedgerEntry[] = [];
    for (const entry of this.read()) {
      const now = this.startTime(entry.pid);
      if (now !== undefined && now !== entry.startTime) continue; // the id belongs to another process now
      try {
        kill(-entry.pid, 'SIGKILL');
        reaped.push(entry);
      } catch {
        // ESRCH: the group has ended by itself.
      }
    }
    this.entries.clear();
    rmSync(this.file, { force: true });
    return reaped;
  }

  private read(): LedgerEntry[] {
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<LedgerFile>;
      return (parsed.children ?? []).filter(
        (e): e is LedgerEntry =>
          typeof e?.plugin === 'string' &&
          Number.isInteger(e.pid) &&
          e.pid > 1 &&
          typeof e.startTime === 'string',
      );
    } catch {
      return []; // none, or unreadable: nothing can be proven ours
    }
  }

  /**
   * Best effort: a DATA_DIR that cannot be written must not keep plugins from running. With
   * nothing running (e.g. after a clean shutdown) the file is removed rather than left empty.
   */
  private save(): void {
    const temp = `${this.file}.${process.pid}.tmp`;
    const body: LedgerFile = { children: [...this.entries.values()] };
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

  private startTime(pid: number): string | undefined {
    try {
      const stat = readFileSync(`${this.proc}/${pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may contain anything.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return fields[19]; // field 22 overall: starttime
    } catch {
      return undefined;
    }
  }
}
