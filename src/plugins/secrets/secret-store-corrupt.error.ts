/**
 * The store, or one value in it, cannot be trusted: not readable, not a store, sealed with
 * another key, or altered. The message never contains a secret value.
 */
export class SecretStoreCorruptError extends Error {
  public constructor(public readonly reason: string) {
    super(`secret store is corrupt: ${reason}`);
    this.name = 'SecretStoreCorruptError';
  }
}
