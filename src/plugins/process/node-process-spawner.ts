import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';

import { CHILD_LEDGER, ChildLedger } from './child-ledger';
import { DATA_DIR_LOCK, DataDirLock } from './data-dir-lock';
import { LineSplitter } from './line-splitter';
import { PLUGIN_TAG_VARIABLE, PluginProcessTracker, TrackedServer } from './plugin-process-tracker';
import type {
  ChildHandle,
  OutputStream,
  ProcessSpawner,
  SpawnSpec,
  StopSignal,
} from './process-spawner';

/**
 * Spawns each plugin as the leader of its own process group and session (`detached`), so that a
 * signal to `-pid` reaches everything it started that stayed in the group, and tags it
 * (PLUGIN_TAG_VARIABLE) so that the PluginProcessTracker finds what left the group; a server's
 * exit is reported only once all of its processes are gone. Running servers are recorded in
 * DATA_DIR, and at startup, under the DATA_DIR lock, what a killed host left behind is ended
 * (ChildLedger).
 */
@Injectable()
export class NodeProcessSpawner implements ProcessSpawner, OnModuleInit {
  private readonly logger = new Logger(NodeProcessSpawner.name);

  public constructor(
    @Inject(CHILD_LEDGER) private readonly ledger: ChildLedger,
    private readonly tracker: PluginProcessTracker,
    @Inject(DATA_DIR_LOCK) private readonly lock: DataDirLock,
  ) {}

  /**
   * Runs before any plugin is started (plugins start on application bootstrap). The lock comes
   * first: while another live host uses this DATA_DIR, the ledger lists its plugins, and they
   * must not be ended.
   */
  public onModuleInit(): void {
    this.lock.acquire();
    for (const { plugin, pid, kind } of this.ledger.reapEarlierRun())
      this.logger.warn({ event: 'stale_plugin_killed', plugin, pid, kind });
  }

  public spawn(spec: SpawnSpec): ChildHandle {
    const plugin = spec.env.PLUGIN_NAME ?? spec.args[0] ?? '?';
    const tag = randomBytes(16).toString('hex');
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: { ...spec.env, [PLUGIN_TAG_VARIABLE]: tag },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const lineListeners: ((stream: OutputStream, line: string) => void)[] = [];
    const exitListeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = [];
    const closeListeners: (() => void)[] = [];
    let exited = false;
    const emitLine = (stream: OutputStream, line: string): void => {
      for (const l of lineListeners) l(stream, line);
    };
    readLines(child.stdout, (line) => emitLine('stdout', line));
    readLines(child.stderr, (line) => emitLine('stderr', line));
    const pid = child.pid;
    const tracked = pid === undefined ? undefined : this.tracker.track(pid, tag);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      // `void`: sweep never rejects, and a listener that throws is logged here, so this chain
      // cannot end in an unhandled rejection (which ends the process on Node 20).
      void this.sweep(plugin, tracked)
        .then(() => {
          try {
            for (const l of exitListeners) l(code, signal);
          } finally {
            if (pid !== undefined) this.ledger.remove(pid);
          }
        })
        .catch((err: unknown) =>
          this.logger.error({ event: 'plugin_exit_listener_failed', plugin, reason: String(err) }),
        );
    };
    child.on('exit', finish);
    // After 'exit' and the end of both pipes, also when the spawn failed.
    child.once('close', () => {
      for (const l of closeListeners) l();
    });
    child.on('error', (err) => {
      emitLine('stderr', `spawn failed: ${err.message}`);
      // 'exit' does not follow a failed spawn.
      if (child.pid === undefined) finish(null, null);
    });
    if (pid !== undefined) this.ledger.add(plugin, pid, tag);
    return {
      pid,
      onLine: (l) => lineListeners.push(l),
      onExit: (l) => exitListeners.push(l),
      onClose: (l) => closeListeners.push(l),
      signal: (signal: StopSignal) => {
        if (pid === undefined) return;
        // A stop begins: what left the group is found while the tree is whole, and told too.
        if (signal === 'SIGTERM' && tracked !== undefined && !exited)
          this.tracker.signalEscapees(tracked, signal);
        try {
          process.kill(-pid, signal);
        } catch {
          // ESRCH: the group is already gone.
        }
      },
    };
  }

  /** Ends what is left of an exited server (see PluginProcessTracker.end); never rejects. */
  private async sweep(plugin: string, tracked: TrackedServer | undefined): Promise<void> {
    if (tracked === undefined) return;
    try {
      const { escapees, survivors } = await this.tracker.end(tracked);
      if (escapees.length > 0)
        this.logger.warn({ event: 'plugin_escapees_killed', plugin, pids: escapees });
      if (survivors.length > 0)
        this.logger.error({ event: 'plugin_processes_survived', plugin, pids: survivors });
    } catch (err) {
      this.logger.error({ event: 'plugin_sweep_failed', plugin, reason: (err as Error).message });
    }
  }
}

function readLines(stream: Readable, onLine: (line: string) => void): void {
  const splitter = new LineSplitter(onLine);
  stream.on('data', (chunk: Buffer) => splitter.push(chunk));
  stream.on('end', () => splitter.end());
  // A broken pipe from a dying plugin is not our error to raise.
  stream.on('error', () => undefined);
}
