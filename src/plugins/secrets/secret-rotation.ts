import { existsSync } from 'node:fs';

import type { Pool } from 'pg';

import { migrate } from '../../database/migrate';

import { SecretCipher } from './secret-cipher';
import { FileSecretStore } from './file-secret-store';
import { PgSecretStore } from './pg-secret-store';

interface RotationResult {
  /** False when there was no store file: nothing was written. */
  readonly storeExisted: boolean;
  /** How many values were re-encrypted. */
  readonly count: number;
  readonly oldKeyId: string;
  readonly newKeyId: string;
}

/**
 * Re-encrypts the store at `file` from `oldKey` to `newKey` (fresh nonces) in one atomic
 * write. Throws SecretStoreCorruptError, writing nothing, unless every value opens with
 * `oldKey`. Run it while the host is stopped (`npm run secrets:rotate`).
 */
export async function rotateSecretStore(
  file: string,
  oldKey: Buffer,
  newKey: Buffer,
): Promise<RotationResult> {
  const oldCipher = new SecretCipher(oldKey);
  const newCipher = new SecretCipher(newKey);
  const ids = { oldKeyId: oldCipher.keyId, newKeyId: newCipher.keyId };
  if (!existsSync(file)) return { storeExisted: false, count: 0, ...ids };
  const store = new FileSecretStore(file, oldCipher);
  store.load();
  const count = await store.rekey(newCipher);
  return { storeExisted: true, count, ...ids };
}

/**
 * Re-encrypts the secrets in the DATABASE_URL database from `oldKey` to `newKey` in one
 * transaction that locks the table. Throws SecretStoreCorruptError, changing nothing, unless
 * every row opens with `oldKey`. Stop every replica first: one still running with the old key
 * would find values it can no longer open.
 */
export async function rotateDatabaseSecrets(
  pool: Pool,
  location: string,
  oldKey: Buffer,
  newKey: Buffer,
): Promise<Omit<RotationResult, 'storeExisted'>> {
  const oldCipher = new SecretCipher(oldKey);
  const newCipher = new SecretCipher(newKey);
  await migrate(pool);
  const store = new PgSecretStore(pool, oldCipher, location);
  await store.load();
  const count = await store.rekey(newCipher);
  return { count, oldKeyId: oldCipher.keyId, newKeyId: newCipher.keyId };
}
