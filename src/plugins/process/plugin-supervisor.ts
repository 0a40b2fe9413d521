import type { PluginName } from '../shared/plugin.types';
import type { Clock, ClockTimer } from '../../common/clock';
import type { ChildHandle, OutputStream, ProcessSpawner, SpawnSpec } from './process-spawner';
import { parseReadyLine } from './ready-line';
import { backoffMs, SupervisionPolicy } from './supervision-policy';

/** The states a supervisor itself can be in; `disabled` and `invalid` belong to the registry. */
export type SupervisorState = 'stopped' | 'starting' | 'running' | 'restarting' | 'failed';

export interface ExitInfo {
  /** Which spawn exited (increments on every spawn). */
  readonly generation: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** A stop was requested (disable, admin restart, shutdown). */
  readonly expected: boolean;
  /** Another process will be started: clients may reconnect (WebSocket 1012 rather than 1011). */
  readonly willRestart: boolean;
}

export interface SupervisorSnapshot {
  readonly state: SupervisorState;
  readonly port: number | undefined;
  readonly pid: number | undefined;
  readonly generation: number;
  readonly restarts: number;
  /** Starts in a row that failed (exit before ready, not ready in time): `failed` at the limit. */
  readonly failedStarts: number;
  /** Unexpected exits since the server last ran healthily; they set the restart backoff. */
  readonly consecutiveExits: number;
  /** Why the last start failed or the process died, for the API. */
  readonly lastError: string | undefined;
}

/** What a supervisor reports; the process manager turns these into logs, events and status. */
export interface SupervisorListener {
  stateChanged(name: PluginName, state: SupervisorState): void;
  exited(name: PluginName, info: ExitInfo): void;
  /** A stop of a running process begins (before SIGTERM): its clients can be told first. */
  stopping(name: PluginName, generation: number, willRestart: boolean): void;
  output(name: PluginName, stream: OutputStream | 'portico', line: string): void;
}

/** Thrown by a spec factory when the plugin cannot be started at all (e.g. missing secrets). */
export class SpawnPreconditionError extends Error {
  public constructor(message: string) {
    super(message);
    this.name = 'SpawnPreconditionError';
  }
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Supervises one plugin server (docs/plugin-contract.md §2): spawn, wait for the ready line, restart with
 * exponential backoff after unexpected exits, give up after too many failed starts in a row,
 * and stop the whole process group with SIGTERM then SIGKILL. Only a start can fail: a server
 * that crashes after it was ready (perhaps because of what a user sent it) is restarted with
 * the same growing backoff but never ends `failed`, or one user could take it down for all.
 * All side effects go through the injected clock and spawner, so every transition is testable
 * without timers or processes.
 */
export class PluginSupervisor {
  private state: SupervisorState = 'stopped';
  private child: ChildHandle | undefined;
  private port: number | undefined;
  private generation = 0;
  private spawns = 0;
  private failedStarts = 0;
  private consecutiveExits = 0;
  private lastError: string | undefined;
  /** A stop was requested for the current child. */
  private stopping = false;
  /** Spawn again as soon as the current child has exited (admin restart, start during stop). */
  private startAfterExit = false;
  private readyTimedOut = false;
  private readyTimer: ClockTimer | undefined;
  private killTimer: ClockTimer | undefined;
  private backoffTimer: ClockTimer | undefined;
  private healthyTimer: ClockTimer | undefined;
  private startWaiters: Waiter[] = [];
  private exitWaiters: (() => void)[] = [];

  public constructor(
    public readonly name: PluginName,
    private readonly specFactory: () => SpawnSpec,
    private policy: SupervisionPolicy,
    private readonly clock: Clock,
    private readonly spawner: ProcessSpawner,
    private readonly listener: SupervisorListener,
  ) {}

  public snapshot(): SupervisorSnapshot {
    return {
      state: this.state,
      port: this.state === 'running' ? this.port : undefined,
      pid: this.child?.pid,
      generation: this.generation,
      restarts: Math.max(this.spawns - 1, 0),
      failedStarts: this.failedStarts,
      consecutiveExits: this.consecutiveExits,
      lastError: this.lastError,
    };
  }

  public updatePolicy(policy: SupervisionPolicy): void {
    this.policy = policy;
  }

  /**
   * Starts the server unless it is running or starting; concurrent calls share one start.
   * Resolves once it is running, rejects when it ends `failed` or is stopped first.
   */
  public start(): Promise<void> {
    if (this.state === 'running') return Promise.resolve();
    const done = this.waitForStart();
    if (this.state === 'starting' || (this.state === 'restarting' && this.child !== undefined)) {
      return done;
    }
    if (this.state === 'failed') this.resetFailures();
    this.cancel('backoffTimer');
    if (this.child !== undefined) {
      // Still being stopped: start as soon as it is gone.
      this.startAfterExit = true;
      this.setState('starting');
    } else {
      this.spawn();
    }
    return done;
  }

  /** Stops the server (if any) and any pending restart; resolves once the process has exited. */
  public stop(): Promise<void> {
    this.cancel('backoffTimer');
    this.startAfterExit = false;
    this.rejectStartWaiters(new Error(`plugin ${this.name} was stopped`));
    const exited = this.child === undefined ? Promise.resolve() : this.waitForExit();
    this.terminateChild();
    this.setState('stopped');
    return exited;
  }

  /** Admin restart: clears `failed`, stops the current process and starts a new one. */
  public restart(): Promise<void> {
    this.resetFailures();
    this.cancel('backoffTimer');
    if (this.child === undefined) {
      const done = this.waitForStart();
      this.spawn();
      return done;
    }
    const done = this.waitForStart();
    this.startAfterExit = true;
    this.terminateChild();
    this.setState('restarting');
    return done;
  }

  private spawn(): void {
    this.generation += 1;
    this.spawns += 1;
    this.readyTimedOut = false;
    this.stopping = false;
    this.port = undefined;
    this.setState('starting');
    let spec: SpawnSpec;
    try {
      spec = this.specFactory();
    } catch (err) {
      this.fail(err instanceof Error ? err.message : String(err));
      return;
    }
    const child = this.spawner.spawn(spec);
    const generation = this.generation;
    this.child = child;
    child.onLine((stream, line) => this.onLine(child, stream, line));
    child.onExit((code, signal) => this.onExit(child, generation, code, signal));
    this.readyTimer = this.clock.setTimeout(
      () => this.onReadyTimeout(child),
      this.policy.readyTimeoutMs,
    );
  }

  private onLine(child: ChildHandle, stream: OutputStream, line: string): void {
    this.listener.output(this.name, stream, line);
    if (
      stream !== 'stdout' ||
      child !== this.child ||
      this.state !== 'starting' ||
      this.stopping ||
      this.readyTimedOut
    ) {
      return;
    }
    const port = parseReadyLine(line);
    if (port === undefined) return;
    this.cancel('readyTimer');
    this.port = port;
    this.lastError = undefined;
    this.failedStarts = 0;
    this.healthyTimer = this.clock.setTimeout(() => {
      this.healthyTimer = undefined;
      this.consecutiveExits = 0;
    }, this.policy.healthyAfterMs);
    this.setState('running');
    const waiters = this.startWaiters;
    this.startWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private onReadyTimeout(child: ChildHandle): void {
    this.readyTimer = undefined;
    if (child !== this.child) return;
    this.readyTimedOut = true;
    this.listener.output(
      this.name,
      'portico',
      `not ready within ${this.policy.readyTimeoutMs} ms; stopping it`,
    );
    this.signalChild('SIGTERM');
  }

  private onExit(
    child: ChildHandle,
    generation: number,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (child !== this.child) return;
    // Whatever the leader did, nothing it started may outlive it.
    child.signal('SIGKILL');
    this.child = undefined;
    this.port = undefined;
    this.cancel('readyTimer');
    this.cancel('killTimer');
    this.cancel('healthyTimer');
    const expected = this.stopping;
    this.stopping = false;
    const how = signal !== null ? `signal ${signal}` : `code ${code ?? 'unknown'}`;
    const exitWaiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of exitWaiters) w();

    if (expected) {
      this.listener.output(this.name, 'portico', `stopped (${how})`);
      const again = this.startAfterExit;
      this.startAfterExit = false;
      this.listener.exited(this.name, { generation, code, signal, expected, willRestart: again });
      if (again) this.spawn();
      return;
    }

    const wasRunning = this.state === 'running';
    this.consecutiveExits += 1;
    if (!wasRunning) this.failedStarts += 1;
    this.lastError = this.readyTimedOut
      ? `not ready within ${this.policy.readyTimeoutMs} ms`
      : `${wasRunning ? 'exited' : 'exited before ready'} with ${how}`;
    this.listener.output(this.name, 'portico', this.lastError);
    let willRestart = false;
    if (!this.policy.restart) {
      this.fail(`${this.lastError} (restart disabled)`);
    } else if (!wasRunning && this.failedStarts >= this.policy.maxFailedStarts) {
      this.fail(`${this.lastError}; gave up after ${this.failedStarts} failed starts in a row`);
    } else {
      willRestart = true;
      const delay = backoffMs(this.policy, this.consecutiveExits);
      this.setState('restarting');
      this.backoffTimer = this.clock.setTimeout(() => {
        this.backoffTimer = undefined;
        this.spawn();
      }, delay);
    }
    this.listener.exited(this.name, { generation, code, signal, expected, willRestart });
  }

  private fail(reason: string): void {
    this.lastError = reason;
    this.setState('failed');
    this.rejectStartWaiters(new Error(`plugin ${this.name} failed: ${reason}`));
  }

  private terminateChild(): void {
    this.cancel('readyTimer');
    this.cancel('healthyTimer');
    if (this.child === undefined) return;
    this.port = undefined;
    if (this.stopping) return;
    this.stopping = true;
    this.listener.stopping(this.name, this.generation, this.startAfterExit);
    this.signalChild('SIGTERM');
  }

  private signalChild(signal: 'SIGTERM'): void {
    const child = this.child;
    if (child === undefined) return;
    child.signal(signal);
    if (this.killTimer === undefined) {
      this.killTimer = this.clock.setTimeout(() => {
        this.killTimer = undefined;
        if (this.child === child) child.signal('SIGKILL');
      }, this.policy.killGraceMs);
    }
  }

  private resetFailures(): void {
    this.failedStarts = 0;
    this.consecutiveExits = 0;
    this.lastError = undefined;
  }

  private waitForStart(): Promise<void> {
    const done = new Promise<void>((resolve, reject) =>
      this.startWaiters.push({ resolve, reject }),
    );
    // Callers may fire and forget a start; its failure is reported through state, not a crash.
    done.catch(() => undefined);
    return done;
  }

  private waitForExit(): Promise<void> {
    return new Promise<void>((resolve) => this.exitWaiters.push(resolve));
  }

  private rejectStartWaiters(err: Error): void {
    const waiters = this.startWaiters;
    this.startWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  private cancel(timer: 'readyTimer' | 'killTimer' | 'backoffTimer' | 'healthyTimer'): void {
    const t = this[timer];
    if (t !== undefined) this.clock.clearTimeout(t);
    this[timer] = undefined;
  }

  private setState(state: SupervisorState): void {
    if (state === this.state) return;
    this.state = state;
    this.listener.stateChanged(this.name, state);
  }
}
