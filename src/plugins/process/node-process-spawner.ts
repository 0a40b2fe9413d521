import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { ChildLedger } from './child-ledger';
import { Clock, CLOCK } from '../../common/clock';
import { PLUGIN_TAG_VARIABLE, PluginProcessTracker, TrackedServer } from './plugin-process-tracker';
import { LinuxProcTable } from './proc-table';

import { MAX_LINE_CHARS } from './process-spawner';
import type {
  ChildHandle,
  OutputStream,
  ProcessSpawner,
  SpawnSpec,
  StopSignal,
} from './process-spawner';

/** File in DATA_DIR listing the plugin process groups of the running host. */
export const CHILD_LEDGER_FILE = 'children.json';

/**
 * Spawns each plugin as the leader of its own process group and session (`detached`), so that a
 * signal to `-pid` reaches everything it started that stayed in the group, and tags it
 * (PLUGIN_TAG_VARIABLE) so that the PluginProcessTracker finds what left the group; a server's
 * exit is reported only once all of its processes are gone. Running servers are recorded in
 * DATA_DIR, and at startup what a killed host left behind is ended (ChildLedger).
 */
@Injectable()
export class NodeProcessSpawner implements ProcessSpawner, OnModuleInit {
  private readonly logger = new Logger(NodeProcessSpawner.name);
  private readonly ledger: ChildLedger;
  private readonly tracker: PluginProcessTracker;

  public constructor(config: PorticoConfig, @Inject(CLOCK) clock: Clock) {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
    const table = new LinuxProcTable();
    this.ledger = new ChildLedger(join(config.DATA_DIR, CHILD_LEDGER_FILE), table);
    this.tracker = new PluginProcessTracker(
      table,
      (pid, signal) => process.kill(pid, signal),
      clock,
      (ms) => sleep(ms),
      process.pid,
    );
  }

  /** Runs before any plugin is started (plugins start on application bootstrap). */
  public onModuleInit(): void {
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
    splitLines(child.stdout, (line) => emitLine('stdout', line));
    splitLines(child.stderr, (line) => emitLine('stderr', line));
    const pid = child.pid;
    const tracked = pid === undefined ? undefined : this.tracker.track(pid, tag);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      void this.sweep(plugin, tracked).then(() => {
        for (const l of exitListeners) l(code, signal);
        if (pid !== undefined) this.ledger.remove(pid);
      });
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

function splitLines(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  let skipping = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, nl);
      if (!skipping) onLine(trimCr(pending + piece).slice(0, MAX_LINE_CHARS));
      pending = '';
      skipping = false;
      start = nl + 1;
    }
    if (skipping) return;
    pending += chunk.slice(start);
    if (pending.length > MAX_LINE_CHARS) {
      onLine(pending.slice(0, MAX_LINE_CHARS));
      pending = '';
      skipping = true;
    }
  });
  stream.on('end', () => {
    if (pending.length > 0 && !skipping) onLine(trimCr(pending));
    pending = '';
  });
  // A broken pipe from a dying plugin is not our error to raise.
  stream.on('error', () => undefined);
}

function trimCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
