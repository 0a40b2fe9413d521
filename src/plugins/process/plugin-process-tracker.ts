import type { Clock, ClockTimer } from '../../common/clock';
import { PluginProcessRecord, ProcessIdentity, processesOf } from './plugin-processes';
import type { ProcEntry, ProcTable } from './proc-table';

/**
 * Set to a fresh random value in each plugin server's environment; every process it starts
 * inherits it unless started with an environment of its own, so it outlasts `setsid()`, double
 * forks and re-parenting. Secrets may not use the `PORTICO_` prefix, so nothing overrides it.
 */
export const PLUGIN_TAG_VARIABLE = 'PORTICO_PLUGIN_TAG';

export interface TrackerOptions {
  /** How often the process trees of running servers are looked at. */
  readonly observeEveryMs: number;
  /** How long an end-of-server sweep keeps killing before it reports survivors. */
  readonly sweepTimeoutMs: number;
  /** Pause between a sweep's kills and its next look at the table. */
  readonly sweepPollMs: number;
}

export const DEFAULT_TRACKER_OPTIONS: TrackerOptions = {
  observeEveryMs: 2_000,
  sweepTimeoutMs: 2_000,
  sweepPollMs: 20,
};

/** Sends a signal to one process or (negative pid) a process group; may throw (ESRCH, EPERM). */
export type Kill = (pid: number, signal: NodeJS.Signals) => void;

/** The end of one server: which of its processes had left its process group, and which lived on. */
export interface SweepReport {
  /** Processes outside the server's process group that were signalled (at its stop or end). */
  readonly escapees: number[];
  /** Processes still there when the sweep gave up (e.g. stuck in uninterruptible sleep). */
  readonly survivors: number[];
}

/** One tracked server; handed out by `track()` and passed back to the other methods. */
export interface TrackedServer extends PluginProcessRecord {
  readonly tag: string;
}

class Server implements TrackedServer {
  public known = new Map<number, string>();
  public readonly escapees = new Set<number>();
  public constructor(
    public readonly leader: ProcessIdentity,
    public readonly tag: string,
  ) {}
}

/**
 * Finds every process a plugin server started, not only its process group: a descendant may
 * call `setsid()` or `setpgid()` and be re-parented to PID 1 when its parent exits. Node cannot
 * become a child subreaper (`prctl`) without a native addon, so the tracker
 * - looks, at a server's stop and end, for its tag (PLUGIN_TAG_VARIABLE, put in its environment
 *   by the spawner) in every process's environment;
 * - looks at the process tree every `observeEveryMs` while servers run, and once more when a
 *   stop begins, and remembers each server's processes (pid and start time), so that one which
 *   clears its environment is still known after it has left the tree;
 * - follows process groups and sessions whose id is one of those processes.
 * When a server has exited, its group and every process found so are SIGKILLed and the table is
 * looked at again until none is left. Not covered: a process that clears its environment AND
 * leaves the tree (and its session) between two looks, and processes of other users.
 * Cost: a periodic look reads only the plugin's own processes; a stop and an end each read the
 * whole table (stat files and environments) once, and again only while something is left.
 */
export class PluginProcessTracker {
  private readonly servers = new Set<Server>();
  private timer: ClockTimer | undefined;

  public constructor(
    private readonly table: ProcTable,
    private readonly kill: Kill,
    private readonly clock: Clock,
    /** Resolves after `ms`; keeps the host alive meanwhile (a sweep may run during shutdown). */
    private readonly delay: (ms: number) => Promise<void>,
    /** The host's own pid, never signalled. */
    private readonly self: number,
    private readonly options: TrackerOptions = DEFAULT_TRACKER_OPTIONS,
  ) {}

  /** Starts tracking a server that was just spawned (it cannot have been reaped yet). */
  public track(pid: number, tag: string): TrackedServer {
    const server = new Server({ pid, startTime: this.table.get(pid)?.startTime ?? '' }, tag);
    this.servers.add(server);
    this.schedule();
    return server;
  }

  /**
   * One look at each tracked server's process tree (no environments), remembering what is in
   * it. It walks the kernel's children lists from the server and the processes it knows, so it
   * costs in proportion to the plugin's own processes, not to the whole table (which it reads
   * only on kernels without those lists).
   */
  public observe(): void {
    let table: ProcEntry[] | undefined;
    for (const server of this.servers) {
      const found = this.walk(server);
      if (found !== undefined) {
        this.remember(server, found);
      } else {
        table ??= this.table.list();
        this.remember(server, processesOf(table, server, this.self));
      }
    }
  }

  /**
   * A stop of the server begins: sends `signal` to each of its processes outside its process
   * group (the caller signals the group) and remembers them all while the tree is still whole.
   */
  public signalEscapees(tracked: TrackedServer, signal: NodeJS.Signals): void {
    const server = this.find(tracked);
    if (server === undefined) return;
    for (const e of this.remember(server, this.lookFor(server))) {
      if (e.zombie || e.pgid === server.leader.pid) continue;
      this.send(e.pid, signal);
      server.escapees.add(e.pid);
    }
  }

  /**
   * The server has exited: SIGKILLs its process group and each of its other processes, looks
   * again until none is left (new ones may have been forked meanwhile) or `sweepTimeoutMs` has
   * passed, and stops tracking it.
   */
  public async end(tracked: TrackedServer): Promise<SweepReport> {
    const server = this.find(tracked);
    if (server === undefined) return { escapees: [], survivors: [] };
    this.servers.delete(server);
    if (this.servers.size === 0) this.unschedule();
    this.send(-server.leader.pid, 'SIGKILL');
    const deadline = this.clock.now() + this.options.sweepTimeoutMs;
    for (;;) {
      const alive = this.remember(server, this.lookFor(server)).filter((e) => !e.zombie);
      const report = (survivors: ProcEntry[]): SweepReport => ({
        escapees: [...server.escapees],
        survivors: survivors.map((e) => e.pid),
      });
      if (alive.length === 0) return report([]);
      if (this.clock.now() >= deadline) return report(alive);
      for (const e of alive) {
        this.send(e.pid, 'SIGKILL');
        if (e.pgid !== server.leader.pid) server.escapees.add(e.pid);
      }
      await this.delay(this.options.sweepPollMs);
    }
  }

  private find(tracked: TrackedServer): Server | undefined {
    return tracked instanceof Server && this.servers.has(tracked) ? tracked : undefined;
  }

  /** The server and the processes it is known by, while each is itself, and their descendants. */
  private walk(server: Server): ProcEntry[] | undefined {
    const found = new Map<number, ProcEntry>();
    const queue: [number, string | undefined][] = [
      [server.leader.pid, server.leader.startTime],
      ...server.known,
    ];
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      const [pid, startTime] = next;
      if (found.has(pid) || pid <= 1 || pid === this.self) continue;
      const entry = this.table.get(pid);
      if (entry === undefined || (startTime !== undefined && entry.startTime !== startTime))
        continue;
      found.set(pid, entry);
      const children = this.table.children(pid);
      if (children === undefined) return undefined;
      for (const child of children) queue.push([child, undefined]);
    }
    return [...found.values()];
  }

  /** A full look: tree, groups, sessions and tags. */
  private lookFor(server: Server): ProcEntry[] {
    return processesOf(this.table.list(), server, this.self, (pid) =>
      this.table.environ(pid, PLUGIN_TAG_VARIABLE),
    );
  }

  /** What was just found replaces what was known: the found carry the known forward. */
  private remember(server: Server, found: ProcEntry[]): ProcEntry[] {
    server.known = new Map(
      found.filter((e) => e.pid !== server.leader.pid).map((e) => [e.pid, e.startTime]),
    );
    return found;
  }

  private send(pid: number, signal: NodeJS.Signals): void {
    try {
      this.kill(pid, signal);
    } catch {
      // ESRCH: gone meanwhile. EPERM: not ours to signal (another user's); reported if it stays.
    }
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.observe();
      if (this.servers.size > 0) this.schedule();
    }, this.options.observeEveryMs);
  }

  private unschedule(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
