/** File in DATA_DIR holding the encrypted per-plugin secrets. */
export const SECRET_STORE_FILE = 'secrets.enc.json';

/** `format` field of the store file, so a stray JSON file is never mistaken for a store. */
export const SECRET_STORE_FORMAT = 'portico-secrets';

/** Version of the store file layout and of the associated data each value is bound to. */
export const SECRET_STORE_VERSION = 1;

/** Largest secret value, in UTF-8 bytes (an environment variable, not a file). */
export const SECRET_VALUE_MAX_BYTES = 64 * 1024;

/** Values shorter than this are not redacted: replacing every `a` or `42` would wreck logs. */
export const REDACT_MIN_LENGTH = 4;

export const REDACTED = '[REDACTED]';

/** How often PLUGIN_SECRETS_DIR is checked for changed files (kubelet itself takes ~1 min). */
export const MOUNTED_SECRETS_POLL_MS = 2000;

/** RPC requests carry `x-plugin-secret-<lower-cased key>` (docs/plugin-contract.md §7). */
export const SECRET_HEADER_PREFIX = 'x-plugin-secret-';

/** Longer values are not sent as headers (they would exceed common header size limits). */
export const SECRET_HEADER_MAX_LENGTH = 8 * 1024;
