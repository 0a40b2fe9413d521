import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_SALT = 'portico/secret-store/v1';

/** One sealed value as stored on disk; every field is base64. */
export interface SealedValue {
  readonly nonce: string;
  readonly ciphertext: string;
  readonly tag: string;
}

/** The value was tampered with, moved to another plugin or key, or sealed with another key. */
export class SecretDecryptError extends Error {
  public constructor(message = 'authentication failed') {
    super(message);
    this.name = 'SecretDecryptError';
  }
}

/**
 * AES-256-GCM with a key derived from SECRETS_KEY (HKDF, so the store key is never the key
 * plugin identities are derived from), a fresh random 96-bit nonce per seal, and associated
 * data chosen by the caller. `keyId` names the key without revealing it, for rotation.
 */
export class SecretCipher {
  public readonly keyId: string;
  private readonly key: Buffer;

  public constructor(secretsKey: Buffer) {
    if (secretsKey.length !== KEY_BYTES)
      throw new RangeError(`SECRETS_KEY must be ${KEY_BYTES} bytes, not ${secretsKey.length}`);
    this.key = Buffer.from(hkdfSync('sha256', secretsKey, HKDF_SALT, 'aes-256-gcm key', KEY_BYTES));
    this.keyId = Buffer.from(hkdfSync('sha256', secretsKey, HKDF_SALT, 'key id', 8)).toString(
      'hex',
    );
  }

  /** Decodes a base64 SECRETS_KEY; undefined unless it is base64 of exactly 32 bytes. */
  public static parseKey(base64: string | undefined): Buffer | undefined {
    if (base64 === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64.trim())) return undefined;
    const key = Buffer.from(base64, 'base64');
    return key.length === KEY_BYTES ? key : undefined;
  }

  public seal(plaintext: string, associatedData: Buffer): SealedValue {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData);
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return {
      nonce: nonce.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
    };
  }

  /** The plaintext, or SecretDecryptError when anything about the value or its binding is off. */
  public open(sealed: SealedValue, associatedData: Buffer): string {
    const nonce = Buffer.from(sealed.nonce, 'base64');
    const tag = Buffer.from(sealed.tag, 'base64');
    if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES)
      throw new SecretDecryptError('malformed nonce or tag');
    const decipher = createDecipheriv(ALGORITHM, this.key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData);
    decipher.setAuthTag(tag);
    try {
      const plain = Buffer.concat([
        decipher.update(Buffer.from(sealed.ciphertext, 'base64')),
        decipher.final(),
      ]);
      return plain.toString('utf8');
    } catch {
      throw new SecretDecryptError();
    }
  }
}
