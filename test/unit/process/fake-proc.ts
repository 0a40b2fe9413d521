import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A process of the fake /proc; ids default to a leader of its own group and session. */
export interface FakeProcess {
  readonly pid: number;
  readonly ppid?: number;
  readonly pgid?: number;
  readonly sid?: number;
  readonly startTime?: string;
  /** `S` by default; `Z` for a zombie. */
  readonly state?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Ignores SIGKILL (as a process in uninterruptible sleep does for a while). */
  readonly stuck?: boolean;
}

/**
 * A fake /proc folder (`<pid>/stat`, `<pid>/environ`, `<pid>/task/<pid>/children` unless
 * `childrenLists` is false, as on a kernel without them) read by the real LinuxProcTable, and a
 * `kill` that ends its processes as the kernel would: SIGKILL and SIGTERM remove the process
 * (or every member of a group for a negative pid), ESRCH when there is none.
 */
export class FakeProc {
  public readonly signals: [number, string][] = [];
  private readonly processes = new Map<number, FakeProcess>();
  /** Called when a process is killed (e.g. to fork a new one meanwhile). */
  public onKill: (pid: number) => void = () => undefined;

  public constructor(
    public readonly root: string,
    private readonly childrenLists = true,
  ) {
    mkdirSync(root, { recursive: true });
  }

  public add(p: FakeProcess): void {
    const full = { ppid: 1, pgid: p.pid, sid: p.pid, startTime: `${p.pid}00`, state: 'S', ...p };
    this.processes.set(p.pid, full);
    const dir = join(this.root, String(p.pid));
    mkdirSync(dir, { recursive: true });
    // Fields 3.. of stat; field 22 is the start time. The name has `)` and spaces on purpose.
    const fields = [full.state, full.ppid, full.pgid, full.sid, ...Array<number>(15).fill(0)];
    writeFileSync(
      join(dir, 'stat'),
      `${p.pid} (node ) x) ${fields.join(' ')} ${full.startTime} 0 0\n`,
    );
    const env = Object.entries(full.env ?? {}).map(([k, v]) => `${k}=${v}\0`);
    writeFileSync(join(dir, 'environ'), env.join(''));
    mkdirSync(join(dir, 'task', String(p.pid)), { recursive: true });
    this.writeChildren();
  }

  public remove(pid: number): void {
    this.processes.delete(pid);
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
    this.writeChildren();
  }

  public has(pid: number): boolean {
    return this.processes.has(pid);
  }

  public pids(): number[] {
    return [...this.processes.keys()].sort((a, b) => a - b);
  }

  private writeChildren(): void {
    if (!this.childrenLists) return;
    for (const p of this.processes.values()) {
      const children = [...this.processes.values()].filter((c) => c.ppid === p.pid);
      writeFileSync(
        join(this.root, String(p.pid), 'task', String(p.pid), 'children'),
        children.map((c) => `${c.pid} `).join(''),
      );
    }
  }

  public readonly kill = (pid: number, signal: NodeJS.Signals | number | string): void => {
    this.signals.push([pid, String(signal)]);
    const targets =
      pid < 0
        ? [...this.processes.values()].filter((p) => p.pgid === -pid)
        : [this.processes.get(pid)];
    const found = targets.filter((p): p is FakeProcess => p !== undefined);
    if (found.length === 0) throw Object.assign(new Error('no such process'), { code: 'ESRCH' });
    for (const p of found) {
      if (p.stuck === true || p.state === 'Z') continue;
      this.remove(p.pid);
      this.onKill(p.pid);
    }
  };
}
