import type { ProcEntry } from './proc-table';

/** A process named so that a later reuse of its pid is not mistaken for it. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string;
}

/** What is known about one plugin server's processes. */
export interface PluginProcessRecord {
  /** The server Portico spawned: leader of its own process group and session. */
  readonly leader: ProcessIdentity;
  /** The random value of PORTICO_PLUGIN_TAG this server (and so its descendants) started with. */
  readonly tag: string | undefined;
  /** Processes seen earlier to belong to it (pid → start time), e.g. in its process tree. */
  readonly known: ReadonlyMap<number, string>;
}

/**
 * Which processes of `table` belong to the plugin server `plugin`, from one snapshot of the
 * process table:
 * - the leader itself and each known process, while its pid still names the same process;
 * - every member of a process group or session whose id is such a process's pid (Linux never
 *   reuses a pid while a group or session still has it as its id, so this holds after the
 *   leader has exited too, as long as that pid was not given to another process meanwhile);
 * - every process whose environment carries the plugin's tag (`tagOf`; left out, e.g. for the
 *   cheap periodic look, only the tree is followed);
 * - and, repeatedly, the children, group members and session members of all of these.
 * `exclude` (the host itself) and PIDs 0 and 1 are never part of it. Zombies are included (they
 * may still lead a group or session); callers skip them when signalling.
 */
export function processesOf(
  table: readonly ProcEntry[],
  plugin: PluginProcessRecord,
  exclude: number,
  tagOf?: (pid: number) => string | undefined,
): ProcEntry[] {
  const byPid = new Map<number, ProcEntry>();
  const children = new Map<number, ProcEntry[]>(); // ppid → processes
  const grouped = new Map<number, ProcEntry[]>(); // process group or session id → members
  const add = (index: Map<number, ProcEntry[]>, id: number, e: ProcEntry): void => {
    const list = index.get(id);
    if (list === undefined) index.set(id, [e]);
    else list.push(e);
  };
  for (const e of table) {
    if (e.pid <= 1 || e.pid === exclude) continue;
    byPid.set(e.pid, e);
    add(children, e.ppid, e);
    add(grouped, e.pgid, e);
    if (e.sid !== e.pgid) add(grouped, e.sid, e);
  }

  const ours = new Map<number, ProcEntry>();
  /** Ids whose group and session (and, for a live process, children) belong to the plugin. */
  const queue: number[] = [];
  const take = (e: ProcEntry): void => {
    if (ours.has(e.pid)) return;
    ours.set(e.pid, e);
    queue.push(e.pid);
  };
  const claim = (pid: number, startTime: string): void => {
    const now = byPid.get(pid);
    // Gone: a group or session that still has its id is still the one it led.
    if (now === undefined) queue.push(pid);
    else if (now.startTime === startTime) take(now);
  };
  const visited = new Set<number>();
  const follow = (): void => {
    for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
      if (visited.has(id)) continue;
      visited.add(id);
      for (const member of grouped.get(id) ?? []) take(member);
      // Only a live process of ours has children here: a dead one's were handed to another parent.
      if (ours.has(id)) for (const child of children.get(id) ?? []) take(child);
    }
  };
  claim(plugin.leader.pid, plugin.leader.startTime);
  for (const [pid, startTime] of plugin.known) claim(pid, startTime);
  follow();
  if (plugin.tag !== undefined && tagOf !== undefined) {
    // Environments are read last, only for what the tree did not already account for.
    for (const e of byPid.values()) {
      if (!e.zombie && !ours.has(e.pid) && tagOf(e.pid) === plugin.tag) take(e);
    }
    follow();
  }
  return [...ours.values()];
}
