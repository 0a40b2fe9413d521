import 'reflect-metadata';

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Pool } from 'pg';

import { ConfigException } from '../config/config.exception';
import { DEV_KEYS_FILE, loadConfig } from '../config/load-config';
import { PorticoConfig } from '../config/portico-config';
import { databaseLocation } from '../database/database.module';
import { migrate } from '../database/migrate';
import { PLUGIN_STATE_FILE } from '../plugins/manifest/manifest.constants';
import { PgPluginStateStore } from '../plugins/manifest/pg-state.store';
import { FilePluginStateStore, PluginState } from '../plugins/manifest/plugin-state.store';
import { FileSecretStore } from '../plugins/secrets/file-secret-store';
import { PgSecretStore } from '../plugins/secrets/pg-secret-store';
import { SecretCipher } from '../plugins/secrets/secret-cipher';
import { SECRET_STORE_FILE } from '../plugins/secrets/secrets.constants';

/**
 * `npm run state:import` (in the image: `node dist/cli/import-state.js`): copies what a single
 * host kept in DATA_DIR into the DATABASE_URL database, before switching that host (and its new
 * replicas) to the database: the enable flags and access roles of `plugins-state.json`, and the
 * secret values of `secrets.enc.json`, re-sealed with SECRETS_KEY as they go in (the file is
 * opened with SOURCE_SECRETS_KEY if set, else with SECRETS_KEY or the development key generated
 * into DATA_DIR, whichever sealed it). Idempotent: what the database already holds the same is
 * left alone, so a second run changes nothing; what it holds for plugins or keys the files do
 * not list is kept. Never prints a value. Exit 0 done, 1 failed, 2 usage / configuration.
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
  const sourceKey = process.env.SOURCE_SECRETS_KEY;
  if (
    sourceKey !== undefined &&
    sourceKey !== '' &&
    SecretCipher.parseKey(sourceKey) === undefined
  ) {
    process.stderr.write(
      'state:import: SOURCE_SECRETS_KEY must be the base64 encoding of 32 bytes\n',
    );
    return 2;
  }
  const location = databaseLocation(config.DATABASE_URL);
  const pool = new Pool({ connectionString: config.DATABASE_URL, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
    const lines = [
      await importState(
        join(config.DATA_DIR, PLUGIN_STATE_FILE),
        new PgPluginStateStore(pool, location),
      ),
      await importSecrets(config, sourceKey, pool, location),
    ];
    process.stdout.write(lines.map((l) => `state:import: ${l}\n`).join(''));
    return 0;
  } catch (err) {
    process.stderr.write(`state:import: failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

async function importState(file: string, to: PgPluginStateStore): Promise<string> {
  const from = await new FilePluginStateStore(file).load();
  const current = await to.load();
  let imported = 0;
  for (const [name, state] of [...from].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (same(current.get(name), state)) continue;
    await to.patch(name, { enabled: state.enabled, roles: state.roles ?? [] });
    imported++;
  }
  return `${file}: ${imported} plugin(s) imported, ${from.size - imported} already up to date`;
}

/**
 * Every value of the file store into the database's, sealed with SECRETS_KEY. Refuses, importing
 * nothing, when the file can't be opened or a value in it fails authentication.
 */
async function importSecrets(
  config: PorticoConfig,
  sourceKey: string | undefined,
  pool: Pool,
  location: string,
): Promise<string> {
  const file = join(config.DATA_DIR, SECRET_STORE_FILE);
  if (!existsSync(file)) return `${file}: no secret store, no secrets to import`;
  const from = openFileStore(file, sourceKeys(config, sourceKey));
  const bad = from.corruptEntries();
  if (bad.length > 0)
    throw new Error(
      `${file}: ${bad.length} value(s) failed authentication (${bad.join(', ')}); nothing imported`,
    );
  const key = SecretCipher.parseKey(config.SECRETS_KEY) as Buffer;
  const to = new PgSecretStore(pool, new SecretCipher(key), location);
  await to.load();
  let imported = 0;
  let total = 0;
  for (const { plugin, key: name, value } of from.list()) {
    total++;
    if (to.has(plugin, name) && to.read(plugin, name) === value) continue;
    await to.set(plugin, name, value);
    imported++;
  }
  return `${file}: ${imported} secret value(s) imported, ${total - imported} already up to date`;
}

/** The keys that may have sealed the file: the one asked for, or the two a host may have used. */
function sourceKeys(config: PorticoConfig, sourceKey: string | undefined): Buffer[] {
  if (sourceKey !== undefined && sourceKey !== '')
    return [SecretCipher.parseKey(sourceKey) as Buffer];
  const keys = [SecretCipher.parseKey(config.SECRETS_KEY) as Buffer];
  try {
    const dev = JSON.parse(readFileSync(join(config.DATA_DIR, DEV_KEYS_FILE), 'utf8')) as {
      SECRETS_KEY?: string;
    };
    const devKey = SecretCipher.parseKey(dev.SECRETS_KEY);
    if (devKey !== undefined) keys.push(devKey);
  } catch {
    // No generated development key: SECRETS_KEY it is.
  }
  return keys;
}

/** The file store opened with the first of `keys` that sealed it; its error for the first key otherwise. */
function openFileStore(file: string, keys: readonly Buffer[]): FileSecretStore {
  let first: unknown;
  for (const key of keys) {
    const store = new FileSecretStore(file, new SecretCipher(key));
    try {
      store.load();
      return store;
    } catch (err) {
      first ??= err;
    }
  }
  throw first;
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
