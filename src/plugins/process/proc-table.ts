import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** One process, as its /proc/<pid>/stat describes it. */
export interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  /** Process group id. */
  readonly pgid: number;
  /** Session id. */
  readonly sid: number;
  /** Clock ticks since boot (stat field 22): with the pid, names one process across pid reuse. */
  readonly startTime: string;
  /** Exited and not yet reaped: it runs nothing and a signal changes nothing. */
  readonly zombie: boolean;
}

/** Read access to the process table, injected so that tests can use a fake /proc. */
export interface ProcTable {
  /** Every process, in one pass over the table. */
  list(): ProcEntry[];
  /** One process, or undefined once it is gone. */
  get(pid: number): ProcEntry | undefined;
  /**
   * The value of `name` in the environment the process was started with; undefined when it is
   * not set, the process is gone, or its environment may not be read (another user's).
   */
  environ(pid: number, name: string): string | undefined;
  /**
   * The pids of the process's children, from its threads' `children` lists ([] once it is
   * gone); undefined where the kernel has no such lists (built without CONFIG_PROC_CHILDREN).
   */
  children(pid: number): number[] | undefined;
}

/** Injection token of the ProcTable the process room reads. */
export const PROC_TABLE = Symbol('PROC_TABLE');

/** The process table of the running Linux kernel (or a folder laid out like it). */
export class LinuxProcTable implements ProcTable {
  public constructor(private readonly root = '/proc') {}

  public list(): ProcEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return []; // no /proc (not Linux): nothing can be found, nothing is killed
    }
    const entries: ProcEntry[] = [];
    for (const name of names) {
      if (!/^[0-9]+$/.test(name)) continue;
      const entry = this.get(Number(name));
      if (entry !== undefined) entries.push(entry);
    }
    return entries;
  }

  public get(pid: number): ProcEntry | undefined {
    try {
      return parseStat(pid, readFileSync(`${this.root}/${pid}/stat`, 'utf8'));
    } catch {
      return undefined; // gone since the listing
    }
  }

  public environ(pid: number, name: string): string | undefined {
    let env: Buffer;
    try {
      env = readFileSync(`${this.root}/${pid}/environ`);
    } catch {
      return undefined;
    }
    return environValue(env, name);
  }

  public children(pid: number): number[] | undefined {
    let tids: string[];
    try {
      tids = readdirSync(`${this.root}/${pid}/task`);
    } catch {
      return []; // gone
    }
    const children: number[] = [];
    for (const tid of tids) {
      let list: string;
      try {
        list = readFileSync(`${this.root}/${pid}/task/${tid}/children`, 'utf8');
      } catch {
        // The thread ended meanwhile, or the kernel has no children lists at all.
        if (existsSync(`${this.root}/${pid}/task/${tid}`)) return undefined;
        continue;
      }
      for (const child of list.split(' ')) if (/^[0-9]+$/.test(child)) children.push(Number(child));
    }
    return children;
  }
}

/** Parses /proc/<pid>/stat; undefined when it does not look like one. */
export function parseStat(pid: number, stat: string): ProcEntry | undefined {
  // The command name is in parentheses and may itself contain anything, `)` and spaces included.
  const close = stat.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const [state, ppid, pgid, sid] = fields;
  const startTime = fields[19];
  if (state === undefined || startTime === undefined || !/^[0-9]+$/.test(startTime)) {
    return undefined;
  }
  return {
    pid,
    ppid: Number(ppid),
    pgid: Number(pgid),
    sid: Number(sid),
    startTime,
    zombie: state === 'Z' || state === 'X',
  };
}

/** The first `name=value` entry of a NUL-separated environment block, without decoding the rest. */
export function environValue(env: Buffer, name: string): string | undefined {
  const key = Buffer.from(`${name}=`);
  for (let at = env.indexOf(key); at !== -1; at = env.indexOf(key, at + 1)) {
    if (at !== 0 && env[at - 1] !== 0) continue; // the end of another variable's name or value
    const start = at + key.length;
    const end = env.indexOf(0, start);
    return env.toString('utf8', start, end === -1 ? env.length : end);
  }
  return undefined;
}
