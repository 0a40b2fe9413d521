import type { Socket } from 'node:net';

import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';

import { acceptedUntil, TokenVerifier } from '../../auth/token-verifier.service';
import { Clock, CLOCK } from '../../common/clock';
import { PorticoConfig } from '../../config/portico-config';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import type { ExitInfo } from '../process/plugin-supervisor';
import { PluginProcessManager } from '../process/plugin-process-manager.service';
import { canAccess } from '../shared/plugin-access';
import type { PluginName } from '../shared/plugin.types';
import { CloseCode } from './ws-frame';
import { RelayHooks, RelayOptions, WsRelay } from './ws-relay';

/** After a plugin socket drops without a close frame, how long to wait for its exit event. */
const EXIT_WAIT_MS = 1000;

/** A relay about to start: both handshakes are done, the client's 101 is the caller's to send. */
export interface RelayStart extends RelayOptions {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes each side sent after its handshake. */
  readonly clientHead: Buffer;
  readonly upstreamHead: Buffer;
}

/**
 * Every live WebSocket relay, and what happens to them from outside a connection
 * (docs/plugin-contract.md §4): keepalive pings on a shared interval, 1012/1011 when their
 * plugin restarts, stops or exits, 4403 when their user loses access, 4401 when the token they
 * were opened with expires, and 1001 to all of them when the host shuts down — `closeAll`
 * resolves when the last one has closed (or the grace period ends).
 */
@Injectable()
export class RelayRegistry implements OnApplicationBootstrap, OnApplicationShutdown, RelayHooks {
  private readonly logger = new Logger('PluginProxyGateway');
  private readonly relays = new Set<WsRelay>();
  private readonly lostWaits = new Map<WsRelay, NodeJS.Timeout>();
  private readonly lastExit = new Map<PluginName, ExitInfo>();
  private pingTimer: NodeJS.Timeout | undefined;
  private unsubscribeAccess: (() => void) | undefined;
  private unsubscribeSessions: (() => void) | undefined;
  /** Resolves `closeAll` when the last relay reports `closed`. */
  private onEmpty: (() => void) | undefined;

  public constructor(
    private readonly config: PorticoConfig,
    private readonly registry: PluginRegistry,
    private readonly processes: PluginProcessManager,
    private readonly metrics: PorticoMetrics,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly verifier: TokenVerifier,
  ) {}

  public onApplicationBootstrap(): void {
    this.processes.on('stopping', this.onPluginStopping);
    this.processes.on('exit', this.onPluginExit);
    this.unsubscribeAccess = this.registry.onAccessChange(this.onAccessChange);
    // Signed out: the session's sockets close now, not when their token would have expired.
    this.unsubscribeSessions = this.verifier.onSessionEnd((sid) => {
      for (const relay of this.relays)
        if (relay.user.sid === sid) relay.closeBoth(CloseCode.TokenExpired, 'signed out');
    });
    if (this.config.WS_PING_INTERVAL_MS > 0) {
      this.pingTimer = setInterval(() => {
        for (const relay of this.relays) relay.tick();
      }, this.config.WS_PING_INTERVAL_MS);
      // Keepalive alone never keeps the host running.
      this.pingTimer.unref();
    }
  }

  public onApplicationShutdown(): void {
    this.stopWatching();
  }

  public get size(): number {
    return this.relays.size;
  }

  /** Starts relaying a connection; it ends with its credential (`user.exp`), if that has one. */
  public start(start: RelayStart): WsRelay {
    const relay = new WsRelay(start, start.client, start.upstream, this);
    this.relays.add(relay);
    this.metrics.wsOpen.inc({ plugin: relay.plugin });
    relay.start(start.clientHead, start.upstreamHead);
    const expiresAt = acceptedUntil(start.user);
    if (expiresAt !== undefined)
      relay.endAfter(expiresAt - this.clock.now(), CloseCode.TokenExpired, 'token expired');
    return relay;
  }

  /**
   * Host shutdown: stops watching plugins, closes every relay with `code` (the client first:
   * what it sent before it heard the close still reaches the plugin), and resolves when the last
   * one is closed (each destroys what is left of itself within two seconds: one for the client
   * to answer, one for the plugin) or after SHUTDOWN_GRACE_MS, whichever comes first.
   */
  public async closeAll(code: number, reason: string): Promise<void> {
    this.stopWatching();
    for (const relay of this.relays) relay.closeClientFirst(code, reason);
    if (this.relays.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.onEmpty = resolve;
      timer = setTimeout(resolve, this.config.SHUTDOWN_GRACE_MS);
      timer.unref();
    });
    clearTimeout(timer);
    this.onEmpty = undefined;
  }

  public upstreamLost(relay: WsRelay): void {
    const exit = this.lastExit.get(relay.plugin);
    if (exit !== undefined && exit.generation === relay.generation) {
      this.closeForExit(relay, exit.willRestart);
      return;
    }
    // The socket usually drops a moment before the exit is seen; wait for it briefly.
    const wait = setTimeout(() => {
      this.lostWaits.delete(relay);
      relay.closeClient(CloseCode.InternalError, 'plugin connection lost');
    }, EXIT_WAIT_MS);
    wait.unref();
    this.lostWaits.set(relay, wait);
  }

  public closed(relay: WsRelay): void {
    if (this.relays.delete(relay)) this.metrics.wsOpen.dec({ plugin: relay.plugin });
    this.clearLostWait(relay);
    if (this.relays.size === 0) this.onEmpty?.();
  }

  public ended(relay: WsRelay, code: number, reason: string): void {
    this.logger.warn({
      plugin: relay.plugin,
      event: 'ws_ended',
      code,
      reason,
      user: relay.user.id,
    });
  }

  private stopWatching(): void {
    this.processes.off('stopping', this.onPluginStopping);
    this.processes.off('exit', this.onPluginExit);
    this.unsubscribeAccess?.();
    this.unsubscribeAccess = undefined;
    this.unsubscribeSessions?.();
    this.unsubscribeSessions = undefined;
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    for (const timer of this.lostWaits.values()) clearTimeout(timer);
    this.lostWaits.clear();
  }

  private clearLostWait(relay: WsRelay): void {
    const wait = this.lostWaits.get(relay);
    if (wait === undefined) return;
    clearTimeout(wait);
    this.lostWaits.delete(relay);
  }

  private readonly onPluginStopping = (
    name: PluginName,
    generation: number,
    willRestart: boolean,
  ): void => {
    for (const relay of this.relays) {
      if (relay.plugin === name && relay.generation === generation) {
        const code = willRestart ? CloseCode.ServiceRestart : CloseCode.InternalError;
        relay.closeBoth(code, this.closeReason(name, willRestart));
      }
    }
  };

  private readonly onPluginExit = (name: PluginName, info: ExitInfo): void => {
    this.lastExit.set(name, info);
    for (const relay of this.relays) {
      if (relay.plugin !== name || relay.generation !== info.generation) continue;
      this.clearLostWait(relay);
      this.closeForExit(relay, info.willRestart);
    }
  };

  private closeForExit(relay: WsRelay, willRestart: boolean): void {
    const code = willRestart ? CloseCode.ServiceRestart : CloseCode.InternalError;
    relay.closeClient(code, this.closeReason(relay.plugin, willRestart));
  }

  /** The close reason clients see when their plugin's process ends (docs/plugin-contract.md §4). */
  private closeReason(name: PluginName, willRestart: boolean): string {
    if (willRestart) return 'plugin restarting';
    return this.registry.get(name)?.enabled === false ? 'plugin disabled' : 'plugin stopped';
  }

  /** An admin changed who may use a plugin: sessions of users who lost it end (4403). */
  private readonly onAccessChange = (name: PluginName): void => {
    const descriptor = this.registry.get(name);
    if (descriptor === undefined) return;
    for (const relay of this.relays) {
      if (relay.plugin === name && !canAccess(descriptor, relay.user)) {
        this.logger.log({ plugin: name, event: 'ws_access_revoked', user: relay.user.id });
        relay.closeBoth(CloseCode.AccessRevoked, 'access to this plugin was revoked');
      }
    }
  };
}
