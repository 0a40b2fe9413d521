/** Longer output lines are cut at this length so one runaway line cannot grow memory. */
export const MAX_LINE_CHARS = 16 * 1024;

export type OutputStream = 'stdout' | 'stderr';
export type StopSignal = 'SIGTERM' | 'SIGKILL';

/** What to run for one plugin server. */
export interface SpawnSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
}

/** A running plugin process; the only way the supervisor touches an OS process. */
export interface ChildHandle {
  readonly pid: number | undefined;
  /** Each complete output line, cut at MAX_LINE_CHARS, in order. */
  onLine(listener: (stream: OutputStream, line: string) => void): void;
  /**
   * Called once, when the process has exited (or failed to spawn: code null, signal null) and
   * every process it started, inside its group or not, has been ended.
   */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /**
   * Called once, when its stdout and stderr have ended after it exited (Node's `close`): no
   * line follows. Before or after onExit.
   */
  onClose(listener: () => void): void;
  /** Sends the signal to the whole process group; a no-op once the group is gone. */
  signal(signal: StopSignal): void;
}

export interface ProcessSpawner {
  spawn(spec: SpawnSpec): ChildHandle;
}

export const PROCESS_SPAWNER = Symbol('PROCESS_SPAWNER');
