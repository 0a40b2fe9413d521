import { existsSync } from 'node:fs';

import { SecretCipher } from './secret-cipher';
import { FileSecretStore } from './file-secret-store';

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
