import { Inject, Logger, Module, OnApplicationShutdown, Provider } from '@nestjs/common';
import type { ClientConfig, Pool } from 'pg';

import { ConfigException, ConfigExceptionCode } from '../config/config.exception';
import { PorticoConfig } from '../config/portico-config';
import { DatabaseListener } from './database-listener';
import { migrate } from './migrate';

/** The connection to PostgreSQL when DATABASE_URL is set: a pool, and how to open one more. */
export interface Database {
  readonly pool: Pool;
  /** This replica's LISTEN connection, shared by what follows changes (state, secrets). */
  readonly listener: DatabaseListener;
  /** `host:port/database`: what logs and `/readyz` show, never the credentials. */
  readonly location: string;
}

/** `host:port/database` of a postgres:// URL: what may be shown, never the credentials. */
export function databaseLocation(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  return `${url.hostname}:${url.port || '5432'}${url.pathname}`;
}

/** Injection token: the Database, or null without DATABASE_URL. */
export const DATABASE = Symbol('DATABASE');

/** How long a new connection may take before the attempt fails (startup, and every query). */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Connects and brings the schema up to date before anything uses it. A database that cannot be
 * reached, or a schema newer than this Portico, is a startup error naming DATABASE_URL (exit 78).
 */
async function openDatabase(config: PorticoConfig): Promise<Database | null> {
  if (config.DATABASE_URL === undefined) return null;
  const location = databaseLocation(config.DATABASE_URL);
  const clientConfig: ClientConfig = {
    connectionString: config.DATABASE_URL,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'portico',
  };
  // Loaded only here: without DATABASE_URL the driver (2–3 MiB of heap) is never needed.
  const { Pool: PgPool } = await import('pg');
  const pool = new PgPool({ ...clientConfig, max: 10 });
  const logger = new Logger('Database');
  // An idle pooled connection the server closes (restart, failover) is an event, not a crash.
  pool.on('error', (err) =>
    logger.warn({ event: 'database_connection_lost', database: location, reason: err.message }),
  );
  try {
    const applied = await migrate(pool);
    logger.log({ event: 'database_ready', database: location, migrationsApplied: applied });
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new ConfigException(
      ConfigExceptionCode.INVALID_VALUE,
      `Invalid configuration:\n  DATABASE_URL: cannot use the database at ${location}: ` +
        (err as Error).message,
    );
  }
  return { pool, listener: new DatabaseListener(clientConfig, location), location };
}

const databaseProvider: Provider = {
  provide: DATABASE,
  inject: [PorticoConfig],
  useFactory: openDatabase,
};

/** PostgreSQL, when DATABASE_URL is set (docs/operations.md, "Running several replicas"). */
@Module({ providers: [databaseProvider], exports: [DATABASE] })
export class DatabaseModule implements OnApplicationShutdown {
  public constructor(@Inject(DATABASE) private readonly database: Database | null) {}

  /** After every user of the pool and the listener (the stores) has stopped. */
  public async onApplicationShutdown(): Promise<void> {
    this.database?.listener.stop();
    await this.database?.pool.end();
  }
}
