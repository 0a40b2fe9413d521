import { Injectable } from '@nestjs/common';

import type { Principal } from '../auth/principal';
import { PluginRegistry } from './manifest/plugin-registry.service';
import type { PluginDescriptor } from './manifest/plugin-descriptor';
import { toPluginView, PluginView } from './plugin-view';
import { PluginsService } from './plugins.service';
import type { LogLine } from './process/log-ring-buffer';
import { PluginProcessManager } from './process/plugin-process-manager.service';
import { PluginSecretsService } from './secrets/plugin-secrets.service';
import { canAccess } from './shared/plugin-access';
import type { PluginName } from './shared/plugin.types';

/**
 * Plugins as a user sees them (PluginView: what the API answers and the console shows), and one
 * place to hear that a plugin's view may have changed: its process changed state, its enable
 * flag or roles changed (here or on another replica), or its secrets did. Output lines come
 * redacted, as the log API keeps them.
 */
@Injectable()
export class PluginViews {
  public constructor(
    private readonly plugins: PluginsService,
    private readonly registry: PluginRegistry,
    private readonly processes: PluginProcessManager,
    private readonly secrets: PluginSecretsService,
  ) {}

  public view(descriptor: PluginDescriptor, user: Principal): PluginView {
    return toPluginView(descriptor, {
      status: this.plugins.status(descriptor),
      restarts: this.plugins.restarts(descriptor.name),
      lastError: this.plugins.lastError(descriptor.name),
      allowed: canAccess(descriptor, user),
      secrets: this.secrets.list(descriptor.name),
    });
  }

  /** One plugin's view for `user`; undefined when there is no such plugin (any more). */
  public find(name: PluginName, user: Principal): PluginView | undefined {
    const descriptor = this.registry.get(name);
    return descriptor === undefined ? undefined : this.view(descriptor, user);
  }

  /** Every plugin's view for `user`, by name. */
  public all(user: Principal): PluginView[] {
    return this.plugins.list().map((d) => this.view(d, user));
  }

  /**
   * Calls `listener(name)` when the plugin's view may have changed (plugins that appear or
   * vanish in a rescan are not told here: compare `all` now and then). Returns the function that
   * stops it.
   */
  public onChange(listener: (name: PluginName) => void): () => void {
    const onState = (name: PluginName): void => listener(name);
    this.processes.on('state', onState);
    const offState = this.registry.onStateChange((changes) => {
      for (const change of changes) listener(change.name);
    });
    const offAccess = this.registry.onAccessChange(listener);
    const offSecrets = this.secrets.onChange(listener);
    return () => {
      this.processes.off('state', onState);
      offState();
      offAccess();
      offSecrets();
    };
  }

  /** Calls `listener(name, line)` for each line a plugin prints, redacted. */
  public onOutput(listener: (name: PluginName, line: LogLine) => void): () => void {
    this.processes.on('output', listener);
    return () => {
      this.processes.off('output', listener);
    };
  }
}
