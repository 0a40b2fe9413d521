import { SECRET_KEY_PATTERN } from '../manifest/manifest.constants';
import { isPluginName, PluginName } from '../shared/plugin.types';
import type { SealedValue } from './secret-cipher';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import { SECRET_STORE_FORMAT, SECRET_STORE_VERSION } from './secrets.constants';

/** The only cipher a store file may name. */
const CIPHER_NAME = 'aes-256-gcm';

/** A key id as SecretCipher makes it; anything else in the file is reported as `invalid`. */
const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;

/** Sealed values by plugin and key: what a store file holds, in memory. */
export type SealedEntries = ReadonlyMap<PluginName, ReadonlyMap<string, SealedValue>>;

/** The file as written: names in the clear, every value sealed and bound to its plugin and key. */
interface StoreFileBody {
  format: typeof SECRET_STORE_FORMAT;
  version: typeof SECRET_STORE_VERSION;
  cipher: typeof CIPHER_NAME;
  /** Which SECRETS_KEY sealed the values (a hash, not the key): rotation changes it. */
  keyId: string;
  secrets: Record<PluginName, Record<string, SealedValue>>;
}

/**
 * The store file's text for `entries` sealed with the key `keyId`: plugins and keys sorted, so
 * the same values give the same layout. No I/O: SecretStore writes the result.
 */
export function buildStoreFile(entries: SealedEntries, keyId: string): string {
  const body: StoreFileBody = {
    format: SECRET_STORE_FORMAT,
    version: SECRET_STORE_VERSION,
    cipher: CIPHER_NAME,
    keyId,
    // Built from entries: a plugin called `__proto__` must become a key, not a prototype.
    secrets: Object.fromEntries(
      [...entries]
        .sort(([a], [b]) => compare(a, b))
        .map(([plugin, keys]) => [
          plugin,
          Object.fromEntries(
            [...keys].sort(([a], [b]) => compare(a, b)).map(([key, sealed]) => [key, sealed]),
          ),
        ]),
    ),
  };
  return JSON.stringify(body, null, 2) + '\n';
}

/**
 * The sealed values in a store file's text. Throws SecretStoreCorruptError when the text is not
 * a store of this format and version, names another cipher, was sealed with another key than
 * `expectedKeyId`, or has a malformed entry. Values are not opened here: a single value that
 * fails authentication leaves the rest of the store usable (SecretStore).
 */
export function parseStoreFile(
  text: string,
  expectedKeyId: string,
): Map<PluginName, Map<string, SealedValue>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new SecretStoreCorruptError('the file is not valid JSON');
  }
  if (!isRecord(raw) || raw.format !== SECRET_STORE_FORMAT)
    throw new SecretStoreCorruptError('the file is not a Portico secret store');
  if (raw.version !== SECRET_STORE_VERSION)
    throw new SecretStoreCorruptError(
      `unsupported store version ${typeof raw.version === 'number' ? raw.version : '(missing)'}`,
    );
  if (raw.cipher !== CIPHER_NAME) throw new SecretStoreCorruptError('unsupported cipher');
  if (raw.keyId !== expectedKeyId) {
    const theirs =
      typeof raw.keyId === 'string' && KEY_ID_PATTERN.test(raw.keyId) ? raw.keyId : 'invalid';
    throw new SecretStoreCorruptError(
      `sealed with another SECRETS_KEY (key id ${theirs}; the configured key's id is ` +
        `${expectedKeyId})`,
    );
  }
  if (!isRecord(raw.secrets)) throw new SecretStoreCorruptError('malformed secrets');
  const entries = new Map<PluginName, Map<string, SealedValue>>();
  for (const [plugin, keys] of Object.entries(raw.secrets)) {
    if (!isPluginName(plugin) || !isRecord(keys))
      throw new SecretStoreCorruptError('malformed entry (invalid plugin name)');
    const sealedByKey = new Map<string, SealedValue>();
    for (const [key, sealed] of Object.entries(keys)) {
      if (!SECRET_KEY_PATTERN.test(key) || !isSealedValue(sealed))
        throw new SecretStoreCorruptError(`malformed entry for plugin ${plugin}`);
      // Only the three fields: anything else in the file is not carried into the next write.
      sealedByKey.set(key, { nonce: sealed.nonce, ciphertext: sealed.ciphertext, tag: sealed.tag });
    }
    if (sealedByKey.size > 0) entries.set(plugin, sealedByKey);
  }
  return entries;
}

/** Binds a sealed value to where it belongs: moving it to another plugin or key fails to open. */
export function associatedData(plugin: PluginName, key: string): Buffer {
  return Buffer.from(`portico-secret/v${SECRET_STORE_VERSION}\0${plugin}\0${key}`, 'utf8');
}

/** Code-unit order, as `Array.prototype.sort` without a comparator orders strings. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSealedValue(value: unknown): value is SealedValue {
  return (
    isRecord(value) &&
    typeof value.nonce === 'string' &&
    typeof value.ciphertext === 'string' &&
    typeof value.tag === 'string'
  );
}
