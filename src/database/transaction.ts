import type { Pool, PoolClient } from 'pg';

import { PluginException, PluginExceptionCode } from '../plugins/shared/plugin.exception';

/**
 * Runs `work` in a transaction on a pooled connection: committed if it returns, rolled back if
 * it throws. A database that cannot be reached or went away mid-way is PluginException
 * STATE_UNAVAILABLE (503) saying that `what` cannot be changed now; an error in what was asked
 * stays what it is (a 500).
 */
export async function inTransaction<T>(
  pool: Pool,
  what: string,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw isUnavailable(err) ? unavailable(what, err) : err;
  }
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw isUnavailable(err) ? unavailable(what, err) : err;
  } finally {
    client.release();
  }
}

/**
 * The database cannot be reached or went away (connection refused or reset, SQLSTATE class 08
 * "connection exception", 57P "operator intervention" such as a shutdown), as opposed to an
 * error in what was asked. The driver reports a lost connection or a timeout as a plain Error
 * without a code; errors of Portico's own classes thrown by `work` are never mistaken for one.
 */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return err instanceof Error && err.constructor === Error;
  return /^(08|57P)/.test(code) || /^E[A-Z]+$/.test(code);
}

function unavailable(what: string, err: unknown): PluginException {
  return new PluginException(
    PluginExceptionCode.STATE_UNAVAILABLE,
    `${what} cannot be changed now: the database is unavailable (${(err as Error).message})`,
  );
}
