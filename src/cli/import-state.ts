import 'reflect-metadata';

import { join } from 'node:path';

import { Pool } from 'pg';

import { ConfigException } from '../config/config.exception';
import { loadConfig } from '../config/load-config';
import { PorticoConfig } from '../config/portico-config';
import { databaseLocation } from '../database/database.module';
import { migrate } from '../database/migrate';
import { PLUGIN_STATE_FILE } from '../plugins/manifest/manifest.constants';
import { PgPluginStateStore } from '../plugins/manifest/pg-state.store';
import { FilePluginStateStore, PluginState } from '../plugins/manifest/plugin-state.store';

/**
 * `npm run state:import` (in the image: `node dist/cli/import-state.js`): copies the enable flags
 * and access roles a single host kept in `DATA_DIR/plugins-state.json` into the DATABASE_URL
 * database, before switching that host (and its new replicas) to the database. Idempotent: a
 * plugin whose state in the database is already the same is left alone, so running it twice
 * changes nothing the second time. What the database holds for plugins the file does not list
 * is kept. Reads the same environment as the host (DATA_DIR, DATABASE_URL).
 * Exit 0 done, 1 failed, 2 usage / configuration.
 */
async function main(): Promise<number> {
  let config: PorticoConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigException)) throw err;
    process.stderr.write(`state:import: ${err.message}\n`);
    return 2;
  }
  if (config.DATABASE_URL === undefined) {
    process.stderr.write('state:import: set DATABASE_URL (and DATA_DIR) to the target\n');
    return 2;
  }
  const file = join(config.DATA_DIR, PLUGIN_STATE_FILE);
  const from = await new FilePluginStateStore(file).load();
  const pool = new Pool({ connectionString: config.DATABASE_URL, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
    const to = new PgPluginStateStore(pool, databaseLocation(config.DATABASE_URL));
    const current = await to.load();
    let imported = 0;
    for (const [name, state] of [...from].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (same(current.get(name), state)) continue;
      await to.patch(name, { enabled: state.enabled, roles: state.roles ?? [] });
      imported++;
    }
    process.stdout.write(
      `state:import: ${file}: ${imported} plugin(s) imported, ${from.size - imported} already up to date\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`state:import: failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

function same(a: PluginState | undefined, b: PluginState): boolean {
  if (a === undefined) return false;
  const rolesA = [...(a.roles ?? [])].sort().join('\n');
  const rolesB = [...(b.roles ?? [])].sort().join('\n');
  return a.enabled === b.enabled && rolesA === rolesB;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`state:import: failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
