import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { debugEnabled } from '../../logging/debug-enabled';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import type { PluginDescriptor } from '../manifest/plugin-descriptor';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import type { PluginName } from '../shared/plugin.types';
import { PluginIdentityService } from '../secrets/plugin-identity.service';
import { PluginSecretsService } from '../secrets/plugin-secrets.service';
import { Clock, CLOCK } from '../../common/clock';
import { LogLine, LogRingBuffer } from './log-ring-buffer';
import {
  ExitInfo,
  PluginSupervisor,
  SpawnPreconditionError,
  SupervisorListener,
  SupervisorSnapshot,
  SupervisorState,
} from './plugin-supervisor';
import {
  ChildHandle,
  MAX_LINE_CHARS,
  PROCESS_SPAWNER,
  ProcessSpawner,
  SpawnSpec,
} from './process-spawner';
import { policyFor } from './supervision-policy';

const FALLBACK_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface PluginProcessEvents {
  /** A plugin's process exited; `info.willRestart` tells clients whether to come back. */
  exit: [name: PluginName, info: ExitInfo];
  state: [name: PluginName, state: SupervisorState];
  /** A deliberate stop of `generation` is about to begin. */
  stopping: [name: PluginName, generation: number, willRestart: boolean];
  /** A line of the plugin's output, redacted, as the log API keeps it. */
  output: [name: PluginName, line: LogLine];
}

/**
 * Owns one PluginSupervisor per plugin with a server: starts, stops and restarts them, keeps
 * their output, and stops every one of them when the host shuts down.
 */
@Injectable()
export class PluginProcessManager
  extends EventEmitter<PluginProcessEvents>
  implements OnApplicationShutdown, SupervisorListener
{
  private readonly logger = new Logger(PluginProcessManager.name);
  private readonly supervisors = new Map<PluginName, PluginSupervisor>();
  private readonly descriptors = new Map<PluginName, PluginDescriptor>();
  private readonly logs = new Map<PluginName, LogRingBuffer>();
  /** Plugin output goes to the host's log only at debug level; decided once, not per line. */
  private readonly logOutput: boolean;
  /** The secret values each spec hands its process, until it is spawned (see `spawnHolding`). */
  private readonly specSecrets = new WeakMap<
    SpawnSpec,
    { name: PluginName; values: readonly string[] }
  >();
  /** The spawner the supervisors use: the real one, plus secret holds (see `spawnHolding`). */
  private readonly holdingSpawner: ProcessSpawner = { spawn: (spec) => this.spawnHolding(spec) };
  public constructor(
    private readonly config: PorticoConfig,
    private readonly identity: PluginIdentityService,
    private readonly secrets: PluginSecretsService,
    private readonly metrics: PorticoMetrics,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(PROCESS_SPAWNER) private readonly spawner: ProcessSpawner,
  ) {
    super();
    this.logOutput = debugEnabled(config.LOG_LEVEL);
  }

  /** Starts the plugin's server; concurrent calls share one start. Resolves once it is running. */
  public start(descriptor: PluginDescriptor): Promise<void> {
    return this.supervisorFor(descriptor).start();
  }

  /** Stops and then starts the server again; clears `failed`. */
  public restart(descriptor: PluginDescriptor): Promise<void> {
    return this.supervisorFor(descriptor).restart();
  }

  /**
   * Takes a new descriptor of a plugin whose process is left as it is (its restart policy
   * changed): the next exit and the next spawn follow it. Nothing happens to an unknown plugin.
   */
  public reconfigure(descriptor: PluginDescriptor): void {
    if (this.supervisors.has(descriptor.name)) this.supervisorFor(descriptor);
  }

  public async stop(name: PluginName): Promise<void> {
    await this.supervisors.get(name)?.stop();
  }

  /** Stops the server and forgets the plugin (its folder was removed). */
  public async remove(name: PluginName): Promise<void> {
    await this.stop(name);
    this.supervisors.delete(name);
    this.descriptors.delete(name);
    this.metrics.pluginRunning.remove({ plugin: name });
    this.logs.delete(name);
  }

  public snapshot(name: PluginName): SupervisorSnapshot | undefined {
    return this.supervisors.get(name)?.snapshot();
  }

  public tail(name: PluginName, lines: number): LogLine[] {
    return this.logs.get(name)?.tail(lines) ?? [];
  }

  public async onApplicationShutdown(): Promise<void> {
    const all = [...this.supervisors.values()];
    if (all.length === 0) return;
    this.logger.log({ event: 'stopping_all', plugins: all.length });
    await Promise.all(all.map((s) => s.stop()));
  }

  public stateChanged(name: PluginName, state: SupervisorState): void {
    this.logger.log({ plugin: name, event: 'state', state });
    this.metrics.pluginRunning.set({ plugin: name }, state === 'running' ? 1 : 0);
    this.emit('state', name, state);
  }

  public exited(name: PluginName, info: ExitInfo): void {
    const fields = { plugin: name, event: 'exit', code: info.code, signal: info.signal };
    this.metrics.pluginExits.inc({ plugin: name, expected: String(info.expected) });
    if (info.expected) this.logger.log({ ...fields, willRestart: info.willRestart });
    else this.logger.warn({ ...fields, willRestart: info.willRestart, unexpected: true });
    this.emit('exit', name, info);
  }

  public stopping(name: PluginName, generation: number, willRestart: boolean): void {
    this.emit('stopping', name, generation, willRestart);
  }

  public output(name: PluginName, stream: LogLine['stream'], line: string): void {
    let buffer = this.logs.get(name);
    if (buffer === undefined) {
      buffer = new LogRingBuffer();
      this.logs.set(name, buffer);
    }
    // A plugin printing its own secret must not leak it through the log API or the host's logs,
    // nor a process printing a value rotated away while it stops (its values are held until its
    // output ended). A line at the length limit was cut by the spawner: a secret may straddle it.
    const redacted = this.secrets.redact(name, line, line.length >= MAX_LINE_CHARS);
    const entry: LogLine = { time: this.clock.now(), stream, line: redacted };
    buffer.push(entry);
    this.emit('output', name, entry);
    if (this.logOutput)
      this.logger.debug({ plugin: name, event: 'output', stream, line: redacted });
  }

  private supervisorFor(descriptor: PluginDescriptor): PluginSupervisor {
    this.descriptors.set(descriptor.name, descriptor);
    const policy = policyFor(descriptor.manifest, descriptor.restartOverrides);
    let supervisor = this.supervisors.get(descriptor.name);
    if (supervisor === undefined) {
      supervisor = new PluginSupervisor(
        descriptor.name,
        () => this.specFor(descriptor.name),
        policy,
        this.clock,
        this.holdingSpawner,
        this,
      );
      this.supervisors.set(descriptor.name, supervisor);
    } else {
      supervisor.updatePolicy(policy);
    }
    return supervisor;
  }

  /** Built at every spawn so a rescan or a secret change is picked up by the next process. */
  private specFor(name: PluginName): SpawnSpec {
    const descriptor = this.descriptors.get(name);
    const server = descriptor?.manifest?.server;
    if (descriptor === undefined || server === undefined) {
      throw new SpawnPreconditionError('plugin has no server entry');
    }
    const secrets = this.secretsFor(name);
    const dataDir = join(this.config.DATA_DIR, 'plugins', name);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const spec: SpawnSpec = {
      command: process.execPath,
      args: [server],
      cwd: descriptor.dir,
      // The host's own variables last: a secret can never replace them (reserved names).
      env: {
        ...secrets,
        PATH: this.config.PATH ?? FALLBACK_PATH,
        HOME: this.config.HOME ?? dataDir,
        NODE_ENV: this.config.NODE_ENV,
        PLUGIN_NAME: name,
        PLUGIN_DATA_DIR: dataDir,
        PLUGIN_IDENTITY_SECRET: this.identity.secretFor(name),
      },
    };
    this.specSecrets.set(spec, { name, values: Object.values(secrets) });
    return spec;
  }

  /**
   * The plugin's secret values for its environment. A value it needs that cannot be had (a
   * required secret missing, a store that cannot be decrypted) is a SpawnPreconditionError:
   * the plugin goes `failed` with the reason in lastError instead of being retried.
   */
  private secretsFor(name: PluginName): Record<string, string> {
    try {
      return this.secrets.envFor(name);
    } catch (err) {
      if (err instanceof PluginException && err.code === PluginExceptionCode.SECRETS_UNAVAILABLE)
        throw new SpawnPreconditionError(err.message);
      throw err;
    }
  }

  /**
   * Spawns `spec` and keeps the secret values it hands the process redacted until that process
   * has exited and its output has ended (`close`), so what it prints while being stopped after
   * a rotation or deletion is still hidden.
   */
  private spawnHolding(spec: SpawnSpec): ChildHandle {
    const secrets = this.specSecrets.get(spec);
    const release =
      secrets === undefined ? () => undefined : this.secrets.hold(secrets.name, secrets.values);
    let child: ChildHandle;
    try {
      child = this.spawner.spawn(spec);
    } catch (err) {
      release();
      throw err;
    }
    child.onClose(release);
    return child;
  }
}
