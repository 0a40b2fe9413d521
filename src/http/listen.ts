import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';

import type { INestApplication, LoggerService } from '@nestjs/common';

import type { PorticoConfig } from '../config/portico-config';

/** Where Linux keeps the cap on every listen backlog. */
const SOMAXCONN = '/proc/sys/net/core/somaxconn';

/**
 * Starts listening with LISTEN_BACKLOG (Nest's `app.listen` cannot pass a backlog): the app is
 * initialised first, exactly as `app.listen` would. Rejects with the server's error (EADDRINUSE,
 * EACCES).
 */
export async function listen(
  app: INestApplication,
  config: PorticoConfig,
  port: number = config.PORT,
  host: string = config.HOST,
): Promise<void> {
  await app.init();
  const server = app.getHttpServer() as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: config.LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The backlog the kernel grants: LISTEN_BACKLOG, capped by somaxconn (undefined off Linux). */
export function effectiveBacklog(
  requested: number,
  read: () => string = () => readFileSync(SOMAXCONN, 'utf8'),
): { requested: number; somaxconn?: number; effective: number } {
  let somaxconn: number | undefined;
  try {
    const value = Number(read().trim());
    if (Number.isInteger(value) && value > 0) somaxconn = value;
  } catch {
    // Not Linux, or /proc not mounted: the kernel's cap is unknown.
  }
  return {
    requested,
    ...(somaxconn !== undefined ? { somaxconn } : {}),
    effective: somaxconn === undefined ? requested : Math.min(requested, somaxconn),
  };
}

/** Connections a storm of reconnects needs queued at once before a backlog is called small. */
const STORM_BACKLOG = 4096;

/** Logs the listen backlog the kernel grants, with a hint when it is small for a reconnect storm. */
export function logListenBacklog(
  config: PorticoConfig,
  logger: Pick<LoggerService, 'log' | 'warn'>,
): void {
  const backlog = effectiveBacklog(config.LISTEN_BACKLOG);
  const line = { event: 'listen_backlog', ...backlog };
  if (backlog.effective < STORM_BACKLOG)
    logger.warn({
      ...line,
      hint:
        backlog.somaxconn !== undefined && backlog.somaxconn < config.LISTEN_BACKLOG
          ? 'raise net.core.somaxconn (docs/operations.md, "Sizing")'
          : 'raise LISTEN_BACKLOG',
    });
  else logger.log(line);
}
