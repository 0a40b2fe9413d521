import type { Pool } from 'pg';

import { Migration, MIGRATIONS } from './migrations';

/**
 * Any constant shared by every Portico: the advisory lock that makes replicas starting together
 * apply migrations one at a time (the second waits, then finds nothing left to do).
 */
const MIGRATION_LOCK = 0x706f7274; // "port"

/**
 * Brings the schema up to date in one transaction under an advisory lock: either every pending
 * migration is applied and recorded, or none is. Returns the versions it applied.
 */
export async function migrate(
  pool: Pool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`
      CREATE TABLE IF NOT EXISTS portico_schema_migrations (
        version     integer PRIMARY KEY,
        name        text NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now()
      )`);
    const done = await client.query<{ version: number }>(
      'SELECT version FROM portico_schema_migrations',
    );
    const applied = new Set(done.rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known)
      throw new Error(
        `the database schema is at version ${newest}, newer than this Portico knows (${known}): ` +
          'run the newer version, or restore the database',
      );
    const ran: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO portico_schema_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      ran.push(m.version);
    }
    await client.query('COMMIT');
    return ran;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
