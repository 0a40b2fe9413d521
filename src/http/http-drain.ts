import type { Server } from 'node:http';

import { Injectable, Logger, OnApplicationShutdown, OnModuleDestroy } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';

import { PorticoConfig } from '../config/portico-config';

/**
 * Bounds host shutdown by SHUTDOWN_GRACE_MS, HTTP requests included. Nest closes the HTTP server
 * after the shutdown hooks, and `server.close()` waits for every request in flight: one slow RPC
 * upload would keep a SIGTERMed host (and its plugins) running until the client gave up, past
 * Kubernetes' grace period, which then SIGKILLs everything. The timer starts when shutdown
 * starts (`onModuleDestroy` is the first hook) and, once the grace has passed, closes every
 * connection still open so that the plugins can still be stopped in order.
 */
@Injectable()
export class HttpDrain implements OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('Shutdown');
  private timer: NodeJS.Timeout | undefined;

  public constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly config: PorticoConfig,
  ) {}

  public onModuleDestroy(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (server === undefined) return;
    const grace = this.config.SHUTDOWN_GRACE_MS;
    this.logger.log({ event: 'shutdown_started', graceMs: grace });
    this.timer = setTimeout(() => {
      server.getConnections((_err, open) => {
        if (open > 0)
          this.logger.warn({ event: 'shutdown_connections_closed', open, graceMs: grace });
      });
      server.closeAllConnections();
    }, grace);
    // The timer alone never keeps the host running: it only matters while connections do.
    this.timer.unref();
  }

  public onApplicationShutdown(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
