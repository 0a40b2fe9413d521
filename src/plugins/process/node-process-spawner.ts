import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { Injectable, Logger, OnModuleInit } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { ChildLedger } from './child-ledger';

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
 * Spawns each plugin as the leader of its own process group (`detached`), so that a signal to
 * `-pid` reaches everything it started. Running groups are recorded in DATA_DIR, and at startup
 * the groups a killed host left behind are ended (ChildLedger).
 */
@Injectable()
export class NodeProcessSpawner implements ProcessSpawner, OnModuleInit {
  private readonly logger = new Logger(NodeProcessSpawner.name);
  private readonly ledger: ChildLedger;

  public constructor(config: PorticoConfig) {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
    this.ledger = new ChildLedger(join(config.DATA_DIR, CHILD_LEDGER_FILE));
  }

  /** Runs before any plugin is started (plugins start on application bootstrap). */
  public onModuleInit(): void {
    for (const { plugin, pid } of this.ledger.reapEarlierRun())
      this.logger.warn({ event: 'stale_plugin_killed', plugin, pid });
  }

  public spawn(spec: SpawnSpec): ChildHandle {
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: { ...spec.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const lineListeners: ((stream: OutputStream, line: string) => void)[] = [];
    const exitListeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = [];
    let exited = false;
    const emitLine = (stream: OutputStream, line: string): void => {
      for (const l of lineListeners) l(stream, line);
    };
    splitLines(child.stdout, (line) => emitLine('stdout', line));
    splitLines(child.stderr, (line) => emitLine('stderr', line));
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      // The supervisor ends the rest of the group here, so the record can go after it.
      for (const l of exitListeners) l(code, signal);
      if (child.pid !== undefined) this.ledger.remove(child.pid);
    };
    child.on('exit', finish);
    child.on('error', (err) => {
      emitLine('stderr', `spawn failed: ${err.message}`);
      // 'exit' does not follow a failed spawn.
      if (child.pid === undefined) finish(null, null);
    });
    const pid = child.pid;
    if (pid !== undefined) this.ledger.add(spec.env.PLUGIN_NAME ?? spec.args[0] ?? '?', pid);
    return {
      pid,
      onLine: (l) => lineListeners.push(l),
      onExit: (l) => exitListeners.push(l),
      signal: (signal: StopSignal) => {
        if (pid === undefined) return;
        try {
          process.kill(-pid, signal);
        } catch {
          // ESRCH: the group is already gone.
        }
      },
    };
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
