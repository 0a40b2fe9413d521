import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';

import { SecretCipher } from '../../../src/plugins/secrets/secret-cipher';
import { rotateSecretStore } from '../../../src/plugins/secrets/secret-rotation';
import { FileSecretStore } from '../../../src/plugins/secrets/file-secret-store';
import { SecretStoreCorruptError } from '../../../src/plugins/secrets/secret-store-corrupt.error';
import { RotationStore, rotationStore, VALUE_A } from '../../helpers/rotation-store';

describe('key rotation', () => {
  let fixture: RotationStore;
  let file: string;
  let oldKey: Buffer;
  let newKey: Buffer;
  let storeWith: (key: Buffer) => FileSecretStore;

  beforeEach(async () => {
    fixture = await rotationStore();
    ({ file, oldKey, newKey, storeWith } = fixture);
  });

  afterEach(() => fixture.remove());

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
