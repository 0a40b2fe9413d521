import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SecretCipher } from '../../src/plugins/secrets/secret-cipher';
import { FileSecretStore } from '../../src/plugins/secrets/file-secret-store';

export const VALUE_A = 'rotation-value-aaaaaaaa';
export const VALUE_B = 'rotation-value-bbbbbbbb';

/** A secret store holding two values under `oldKey`, in a fresh folder, for key-rotation tests. */
export interface RotationStore {
  readonly dataDir: string;
  readonly file: string;
  readonly oldKey: Buffer;
  readonly newKey: Buffer;
  /** The store file opened (and loaded) with `key`. */
  storeWith(key: Buffer): FileSecretStore;
  remove(): void;
}

export async function rotationStore(): Promise<RotationStore> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portico-rotate-'));
  const file = join(dataDir, 'secrets.enc.json');
  const storeWith = (key: Buffer): FileSecretStore => {
    const store = new FileSecretStore(file, new SecretCipher(key));
    store.load();
    return store;
  };
  const oldKey = randomBytes(32);
  const store = storeWith(oldKey);
  await store.set('board', 'GITHUB_TOKEN', VALUE_A);
  await store.set('assistant', 'MODEL_KEY', VALUE_B);
  return {
    dataDir,
    file,
    oldKey,
    newKey: randomBytes(32),
    storeWith,
    remove: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}
