import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';

import type {
  ChildHandle,
  OutputStream,
  ProcessSpawner,
  SpawnSpec,
  StopSignal,
} from './process-spawner';

/** Longer output lines are cut here so one runaway line cannot grow memory. */
export const MAX_LINE_CHARS = 16 * 1024;

/**
 * Spawns each plugin as the leader of its own process group (`detached`), so that a signal to
 * `-pid` reaches everything it started.
 */
export class NodeProcessSpawner implements ProcessSpawner {
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
      for (const l of exitListeners) l(code, signal);
    };
    child.on('exit', finish);
    child.on('error', (err) => {
      emitLine('stderr', `spawn failed: ${err.message}`);
      // 'exit' does not follow a failed spawn.
      if (child.pid === undefined) finish(null, null);
    });
    const pid = child.pid;
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
