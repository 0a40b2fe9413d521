/**
 * Re-encrypts the stored plugin secrets with a new key: `SECRETS_KEY` is the current key (as
 * the server reads it, so with no variable set it is the generated key in DATA_DIR), and
 * `NEW_SECRETS_KEY` the new one (base64 of 32 bytes, e.g. `openssl rand -base64 32`).
 * With DATABASE_URL set, the database's store is rotated instead of DATA_DIR's file.
 * Stop the host (every replica) first, then restart it with SECRETS_KEY set to the new key.
 * Prints counts and key ids, never a value.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Pool } from 'pg';

import { ConfigException } from '../src/config/config.exception';
import { DEV_KEYS_FILE, loadConfig } from '../src/config/load-config';
import { writeFileAtomic } from '../src/common/atomic-file';
import { databaseLocation } from '../src/database/database.module';
import { SecretCipher } from '../src/plugins/secrets/secret-cipher';
import { rotateDatabaseSecrets, rotateSecretStore } from '../src/plugins/secrets/secret-rotation';
import { SecretStoreCorruptError } from '../src/plugins/secrets/secret-store-corrupt.error';
import { SECRET_STORE_FILE } from '../src/plugins/secrets/secrets.constants';

const USAGE =
  'usage: NEW_SECRETS_KEY=<base64 of 32 bytes> [SECRETS_KEY=<current key>] npm run secrets:rotate';

/** A mistake the user can fix: printed without a stack trace, exits with `exitCode`. */
class ScriptError extends Error {
  public constructor(
    message: string,
    public readonly exitCode: number,
  ) {
    super(message);
  }
}

async function main(env: NodeJS.ProcessEnv): Promise<string[]> {
  const newKey = SecretCipher.parseKey(env.NEW_SECRETS_KEY);
  if (newKey === undefined)
    throw new ScriptError(`NEW_SECRETS_KEY must be the base64 encoding of 32 bytes\n${USAGE}`, 2);
  const config = loadConfig(env);
  const oldKey = SecretCipher.parseKey(config.SECRETS_KEY);
  if (oldKey === undefined) throw new ScriptError('SECRETS_KEY is not usable', 1);
  if (oldKey.equals(newKey))
    throw new ScriptError('NEW_SECRETS_KEY is the current SECRETS_KEY: nothing to rotate', 1);

  if (config.DATABASE_URL !== undefined)
    return rotateInDatabase(config.DATABASE_URL, oldKey, newKey);

  const file = join(config.DATA_DIR, SECRET_STORE_FILE);
  const result = await rotateSecretStore(file, oldKey, newKey);
  const lines = result.storeExisted
    ? [
        `re-encrypted ${result.count} secret value(s) in ${file}`,
        `key id ${result.oldKeyId} -> ${result.newKeyId}`,
      ]
    : [`no secret store at ${file}: nothing to re-encrypt (key id ${result.newKeyId} from now on)`];

  if (env.SECRETS_KEY === undefined || env.SECRETS_KEY === '') {
    // The current key came from the generated development keys: keep `npm start` working.
    const devKeys = join(config.DATA_DIR, DEV_KEYS_FILE);
    const keys = JSON.parse(readFileSync(devKeys, 'utf8')) as Record<string, unknown>;
    keys.SECRETS_KEY = newKey.toString('base64');
    await writeFileAtomic(devKeys, Buffer.from(JSON.stringify(keys, null, 2) + '\n'));
    lines.push(`updated SECRETS_KEY in ${devKeys}`);
  } else {
    lines.push('now restart Portico with SECRETS_KEY set to the new key');
  }
  return lines;
}

/** DATABASE_URL: the rows of every replica's shared store, in one transaction. */
async function rotateInDatabase(url: string, oldKey: Buffer, newKey: Buffer): Promise<string[]> {
  const location = databaseLocation(url);
  const pool = new Pool({ connectionString: url, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  try {
    const result = await rotateDatabaseSecrets(pool, location, oldKey, newKey);
    return [
      `re-encrypted ${result.count} secret value(s) in the database at ${location}`,
      `key id ${result.oldKeyId} -> ${result.newKeyId}`,
      'now restart every replica with SECRETS_KEY set to the new key',
    ];
  } finally {
    await pool.end().catch(() => undefined);
  }
}

main(process.env).then(
  (lines) => process.stdout.write(`${lines.join('\n')}\n`),
  (err: unknown) => {
    const known =
      err instanceof ScriptError ||
      err instanceof ConfigException ||
      err instanceof SecretStoreCorruptError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(
      `${known ? message : `secrets:rotate failed: ${message}`}\n` +
        (err instanceof SecretStoreCorruptError
          ? 'nothing was changed: the store must open with the current SECRETS_KEY\n'
          : ''),
    );
    process.exitCode = err instanceof ScriptError ? err.exitCode : 1;
  },
);
