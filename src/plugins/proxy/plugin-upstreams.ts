import { Injectable } from '@nestjs/common';

import type { Principal } from '../../auth/principal';
import type { PluginDescriptor } from '../manifest/plugin-descriptor';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import { PluginProcessManager } from '../process/plugin-process-manager.service';
import { assertAccess } from '../shared/plugin-access';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { pluginStatus } from '../shared/plugin-status';
import type { PluginName } from '../shared/plugin.types';

/** Where a running plugin's server can be reached. */
export interface UpstreamTarget {
  readonly descriptor: PluginDescriptor;
  readonly port: number;
  /** Process generation, to tell which process a connection belonged to. */
  readonly generation: number;
}

/** Finds the running server a proxied request goes to, for the WebSocket and the RPC proxy. */
@Injectable()
export class PluginUpstreams {
  public constructor(
    private readonly registry: PluginRegistry,
    private readonly processes: PluginProcessManager,
  ) {}

  /** The running server of a plugin for this user, or UNKNOWN_PLUGIN / FORBIDDEN / NOT_RUNNING. */
  public upstream(name: PluginName, user: Principal): UpstreamTarget {
    const descriptor = this.registry.get(name);
    if (descriptor === undefined || descriptor.invalidReason !== undefined) {
      throw new PluginException(PluginExceptionCode.UNKNOWN_PLUGIN, `unknown plugin ${name}`);
    }
    assertAccess(descriptor, user);
    const snapshot = this.processes.snapshot(name);
    if (snapshot?.state !== 'running' || snapshot.port === undefined) {
      const why =
        descriptor.manifest?.server === undefined
          ? 'no server'
          : pluginStatus(descriptor, snapshot?.state);
      throw new PluginException(
        PluginExceptionCode.NOT_RUNNING,
        `plugin ${name} is not running (${why})`,
      );
    }
    return { descriptor, port: snapshot.port, generation: snapshot.generation };
  }

  /** `name` if such a plugin exists, else `-`: metric labels never take arbitrary input. */
  public metricLabel(name: string | undefined): string {
    return name !== undefined && this.registry.get(name) !== undefined ? name : '-';
  }
}
