import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';

import type {
  PluginDescriptor,
  PluginStateChange,
  RescanResult,
} from './manifest/plugin-descriptor';
import { PluginRegistry } from './manifest/plugin-registry.service';
import type { PluginStateSource } from './manifest/plugin-state.store';
import { PluginException, PluginExceptionCode } from './shared/plugin.exception';
import { pluginStatus } from './shared/plugin-status';
import type { PluginName, PluginStatus } from './shared/plugin.types';
import type { LogLine } from './process/log-ring-buffer';
import { PluginProcessManager } from './process/plugin-process-manager.service';
import { PluginSecretsService } from './secrets/plugin-secrets.service';

/**
 * START_NOT_AWAITED: starts and restarts are fired and not awaited. Their outcome is the
 * plugin's state (`running`, or `failed` with the reason in lastError), and the promise the
 * supervisor returns already has a catch attached (PluginSupervisor.waitForStart), so dropping
 * it can never become an unhandled rejection.
 *
 * Ties discovery to supervision: what is discovered, enabled and has a server is started;
 * what disappears is stopped. The single place that answers "what state is plugin X in".
 */
@Injectable()
export class PluginsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(PluginsService.name);
  private discoveredFlag = false;
  private drainingFlag = false;
  /** Plugins found at startup whose first start has not ended (see `starting`). */
  private readonly firstStarts = new Set<PluginName>();

  public constructor(
    private readonly registry: PluginRegistry,
    private readonly processes: PluginProcessManager,
    secrets: PluginSecretsService,
  ) {
    // A plugin gets its secrets at spawn, so a change restarts its server (or starts one that
    // was waiting for a required secret).
    secrets.onChange((name) => {
      const descriptor = this.registry.get(name);
      if (descriptor === undefined || !isRunnable(descriptor)) return;
      this.logger.log({ plugin: name, event: 'secrets_changed_restart' });
      // Not awaited (START_NOT_AWAITED below).
      void this.processes.restart(descriptor);
    });
    registry.onStateChange((changes) => this.applyStateChanges(changes));
  }

  public async onApplicationBootstrap(): Promise<void> {
    this.processes.on('state', (name, state) => {
      if (state !== 'starting') this.firstStarts.delete(name);
    });
    await this.rescan();
    for (const descriptor of this.registry.list())
      if (isRunnable(descriptor) && this.status(descriptor) === 'starting')
        this.firstStarts.add(descriptor.name);
    this.discoveredFlag = true;
  }

  public beforeApplicationShutdown(): void {
    this.drainingFlag = true;
  }

  /** Re-reads PLUGINS_DIR; starts what appeared, stops what vanished, restarts what changed. */
  public async rescan(): Promise<RescanResult> {
    const result = await this.registry.scan();
    await Promise.all(result.removed.map((name) => this.processes.remove(name)));
    const changed = new Set(result.changed);
    for (const descriptor of this.registry.list()) {
      if (!isRunnable(descriptor)) {
        // stop() never rejects: it resolves when the process has exited.
        if (this.processes.snapshot(descriptor.name) !== undefined)
          void this.processes.stop(descriptor.name);
        continue;
      }
      const running = this.processes.snapshot(descriptor.name)?.state === 'running';
      // Not awaited (START_NOT_AWAITED below).
      if (changed.has(descriptor.name) && running) void this.processes.restart(descriptor);
      else void this.processes.start(descriptor);
    }
    this.logger.log({ event: 'rescan', ...result, plugins: this.registry.list().length });
    return result;
  }

  /** Where enable flags and access roles come from (PLUGINS_CONFIG or DATA_DIR). */
  public stateSource(): PluginStateSource | undefined {
    return this.registry.stateSource();
  }

  public list(): PluginDescriptor[] {
    return this.registry.list();
  }

  public exists(name: PluginName): boolean {
    return this.registry.get(name) !== undefined;
  }

  public get(name: PluginName): PluginDescriptor {
    return this.registry.require(name);
  }

  public status(descriptor: PluginDescriptor): PluginStatus {
    return pluginStatus(descriptor, this.processes.snapshot(descriptor.name)?.state);
  }

  /**
   * The stored states changed from outside (a new PLUGINS_CONFIG): reconciles the processes.
   * A plugin disabled is stopped (its WebSockets get 1011 "plugin disabled"), one enabled is
   * started, a new restart policy applies from the next exit. Access changes need nothing here:
   * the proxy closes the sessions of users who lost access.
   */
  private applyStateChanges(changes: readonly PluginStateChange[]): void {
    if (this.drainingFlag) return;
    for (const change of changes) {
      const descriptor = this.registry.get(change.name);
      if (descriptor === undefined) continue;
      if (!isRunnable(descriptor)) {
        // stop() never rejects: it resolves when the process has exited.
        if (this.processes.snapshot(descriptor.name) !== undefined)
          void this.processes.stop(descriptor.name);
        continue;
      }
      this.processes.reconfigure(descriptor);
      // Not awaited (START_NOT_AWAITED below).
      if (change.enabled) void this.processes.start(descriptor);
    }
  }

  public async setEnabled(name: PluginName, enabled: boolean): Promise<PluginDescriptor> {
    const current = this.registry.require(name);
    if (current.invalidReason !== undefined) {
      throw new PluginException(
        PluginExceptionCode.CONFLICT,
        `plugin ${name} is invalid: ${current.invalidReason}`,
      );
    }
    const descriptor = await this.registry.setEnabled(name, enabled);
    if (!enabled) await this.processes.stop(name);
    // Not awaited (START_NOT_AWAITED below): the answer is `starting`, not a wait.
    else if (isRunnable(descriptor)) void this.processes.start(descriptor);
    return descriptor;
  }

  public setAccess(name: PluginName, roles: readonly string[]): Promise<PluginDescriptor> {
    return this.registry.setAccess(name, roles);
  }

  /** Admin restart; also the way out of `failed`. */
  public restart(name: PluginName): PluginDescriptor {
    const descriptor = this.registry.require(name);
    if (!isRunnable(descriptor)) {
      const why =
        descriptor.invalidReason !== undefined
          ? 'is invalid'
          : !descriptor.enabled
            ? 'is disabled'
            : 'has no server';
      throw new PluginException(PluginExceptionCode.CONFLICT, `plugin ${name} ${why}`);
    }
    // Not awaited (START_NOT_AWAITED below): the answer is `restarting`, not a wait.
    void this.processes.restart(descriptor);
    return descriptor;
  }

  public logs(name: PluginName, tail: number): LogLine[] {
    this.registry.require(name);
    return this.processes.tail(name, tail);
  }

  public restarts(name: PluginName): number {
    return this.processes.snapshot(name)?.restarts ?? 0;
  }

  public lastError(name: PluginName): string | undefined {
    return this.processes.snapshot(name)?.lastError;
  }

  public get discovered(): boolean {
    return this.discoveredFlag;
  }

  public get draining(): boolean {
    return this.drainingFlag;
  }

  /**
   * Plugins found at startup whose first start has not ended yet (running, failed or stopped):
   * readiness waits for them. Only the first start: a plugin that restarts later, or one enabled
   * later, would otherwise take the host out of its Service while every replica restarts it at
   * once (a crash loop, or a PLUGINS_CONFIG change), turning one plugin's trouble into an outage.
   */
  public starting(): string[] {
    return [...this.firstStarts]
      .filter((name) => {
        const descriptor = this.registry.get(name);
        return descriptor !== undefined && this.status(descriptor) === 'starting';
      })
      .sort();
  }
}

function isRunnable(d: PluginDescriptor): boolean {
  return d.invalidReason === undefined && d.enabled && d.manifest?.server !== undefined;
}
