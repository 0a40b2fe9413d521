import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SecretCipher } from '../../../src/plugins/secrets/secret-cipher';
import { rotateSecretStore } from '../../../src/plugins/secrets/secret-rotation';
import { SecretStore } from '../../../src/plugins/secrets/secret-store';
import { SecretStoreCorruptError } from '../../../src/plugins/secrets/secret-store-corrupt.error';

const VALUE_A = 'rotation-value-aaaaaaaa';
const VALUE_B = 'rotation-value-bbbbbbbb';

describe('key rotation', () => {
  let dataDir: string;
  let file: string;
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);

  const storeWith = (key: Buffer): SecretStore => {
    const store = new SecretStore(file, new SecretCipher(key));
    store.load();
    return store;
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-rotate-'));
    file = join(dataDir, 'secrets.enc.json');
    const store = storeWith(oldKey);
    await store.set('board', 'GITHUB_TOKEN', VALUE_A);
    await store.set('assistant', 'MODEL_KEY', VALUE_B);
  });

  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  describe('rotateSecretStore', () => {
    it('re-encrypts every value for the new key; the old key no longer opens the store', async () => {
      const result = await rotateSecretStore(file, oldKey, newKey);
      expect(result).toEqual({
        storeExisted: true,
        count: 2,
        oldKeyId: new SecretCipher(oldKey).keyId,
        newKeyId: new SecretCipher(newKey).keyId,
      });
      expect(storeWith(newKey).read('board', 'GITHUB_TOKEN')).toBe(VALUE_A);
      expect(() => storeWith(oldKey)).toThrow(SecretStoreCorruptError);
    });

    it('refuses, writing nothing, when the old key is not the one the store was sealed with', async () => {
      const before = readFileSync(file, 'utf8');
      await expect(rotateSecretStore(file, randomBytes(32), newKey)).rejects.toThrow(
        /secret store is corrupt: sealed with another SECRETS_KEY/,
      );
      expect(readFileSync(file, 'utf8')).toBe(before);
    });

    it('does nothing when there is no store', async () => {
      rmSync(file);
      await expect(rotateSecretStore(file, oldKey, newKey)).resolves.toMatchObject({
        storeExisted: false,
        count: 0,
      });
    });
  });
});
