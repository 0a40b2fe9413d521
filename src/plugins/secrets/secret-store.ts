import type { PluginName } from '../shared/plugin.types';
import { SealedValue, SecretCipher, SecretDecryptError } from './secret-cipher';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import { associatedData, SealedEntries } from './secret-store.codec';

/** Where a store keeps its values, for the logs: a file, or a database (never credentials). */
export type SecretStoreLocation = { readonly file: string } | { readonly database: string };

/**
 * The encrypted per-plugin secret values (docs/plugin-contract.md §7), wherever they are kept:
 * a file in DATA_DIR (FileSecretStore) or PostgreSQL shared by every replica (PgSecretStore).
 * Either way each value is sealed with SECRETS_KEY and bound to its plugin and key, so the
 * medium never sees a plaintext value. Values are kept decrypted in memory, so reads are
 * synchronous; writes are asynchronous and applied to memory once they are durable.
 */
export interface SecretStore {
  readonly location: SecretStoreLocation;
  /** Changes whenever the values in memory may have changed (for caches built from them). */
  readonly revision: number;
  /** Why the whole store is unusable, if it is. */
  readonly corrupt: SecretStoreCorruptError | undefined;
  /**
   * Reads and decrypts every value. Throws SecretStoreCorruptError, and remembers it, when the
   * whole store is unusable; single values that fail authentication are reported by `read`.
   */
  load(): void | Promise<void>;
  /** Re-reads the values if they were replaced from outside since; true if they were. */
  refresh(): boolean;
  /** The stored value; SecretStoreCorruptError when the store or this value can't be trusted. */
  read(plugin: PluginName, key: string): string | undefined;
  /** Whether a value (readable or not) is stored for this plugin and key. */
  has(plugin: PluginName, key: string): boolean;
  /** Every readable value of the plugin. */
  values(plugin: PluginName): string[];
  /** `plugin/KEY` of every value that failed authentication. */
  corruptEntries(): string[];
  /** Stores (or replaces) a value; also the way to overwrite a single value that was altered. */
  set(plugin: PluginName, key: string, value: string): Promise<void>;
  /** Removes a stored value; false when there was none. */
  delete(plugin: PluginName, key: string): Promise<boolean>;
  /**
   * Re-seals every value with `cipher` (fresh nonces) at once, then uses it from now on.
   * Refuses, changing nothing, if any value can't be decrypted with the current key. Returns
   * how many values were re-sealed.
   */
  rekey(cipher: SecretCipher): Promise<number>;
  /**
   * Calls `onChange(plugins)` with the plugins whose values were changed from outside this
   * process (another replica); `read` then returns the new ones. Returns the function that
   * stops it. Absent on stores only this process writes.
   */
  watch?(onChange: (plugins: readonly PluginName[]) => void): () => void;
}

/** A value in memory: as sealed, and opened. */
export interface Entry {
  readonly sealed: SealedValue;
  /** undefined: the value failed authentication. */
  readonly value: string | undefined;
}

export type Entries = Map<PluginName, Map<string, Entry>>;

/**
 * What every SecretStore does the same way: the decrypted values in memory and the reads on
 * them. Subclasses load and write.
 */
export abstract class DecryptedSecrets {
  protected entries: Entries = new Map();
  protected corruption: SecretStoreCorruptError | undefined;
  protected revisionCounter = 0;

  public get revision(): number {
    return this.revisionCounter;
  }

  public get corrupt(): SecretStoreCorruptError | undefined {
    return this.corruption;
  }

  public read(plugin: PluginName, key: string): string | undefined {
    if (this.corruption !== undefined) throw this.corruption;
    const entry = this.entries.get(plugin)?.get(key);
    if (entry === undefined) return undefined;
    if (entry.value === undefined)
      throw new SecretStoreCorruptError(
        `the stored value of ${key} for plugin ${plugin} failed authentication ` +
          '(altered, or moved from another plugin or key)',
      );
    return entry.value;
  }

  public has(plugin: PluginName, key: string): boolean {
    return this.entries.get(plugin)?.has(key) === true;
  }

  public values(plugin: PluginName): string[] {
    const out: string[] = [];
    for (const entry of this.entries.get(plugin)?.values() ?? [])
      if (entry.value !== undefined) out.push(entry.value);
    return out;
  }

  /** Every readable value with its plugin and key, sorted (to copy a whole store). */
  public list(): { plugin: PluginName; key: string; value: string }[] {
    const out: { plugin: PluginName; key: string; value: string }[] = [];
    for (const [plugin, map] of [...this.entries].sort(([a], [b]) => (a < b ? -1 : 1)))
      for (const [key, entry] of [...map].sort(([a], [b]) => (a < b ? -1 : 1)))
        if (entry.value !== undefined) out.push({ plugin, key, value: entry.value });
    return out;
  }

  public corruptEntries(): string[] {
    const out: string[] = [];
    for (const [plugin, map] of this.entries)
      for (const [key, entry] of map) if (entry.value === undefined) out.push(`${plugin}/${key}`);
    return out.sort();
  }

  /** The entries with `value` sealed with `cipher` for this plugin and key (a copy). */
  protected withValue(
    cipher: SecretCipher,
    plugin: PluginName,
    key: string,
    value: string,
  ): Entries {
    const next = new Map(this.entries);
    const forPlugin = new Map(next.get(plugin));
    forPlugin.set(key, { sealed: cipher.seal(value, associatedData(plugin, key)), value });
    next.set(plugin, forPlugin);
    return next;
  }

  /** The entries without this plugin's key (a copy). */
  protected without(plugin: PluginName, key: string): Entries {
    const next = new Map(this.entries);
    const forPlugin = new Map(next.get(plugin));
    forPlugin.delete(key);
    if (forPlugin.size === 0) next.delete(plugin);
    else next.set(plugin, forPlugin);
    return next;
  }

  /** Refuses a write based on a store that can't be trusted. */
  protected assertUsable(): void {
    if (this.corruption !== undefined) throw this.corruption;
  }

  /** Every value opened with `cipher`, in new entries; throws if any fails authentication. */
  protected resealed(cipher: SecretCipher): { entries: Entries; count: number } {
    const bad = this.corruptEntries();
    if (bad.length > 0)
      throw new SecretStoreCorruptError(
        `${bad.length} stored value(s) failed authentication: ${bad.join(', ')}`,
      );
    const entries: Entries = new Map();
    let count = 0;
    for (const [plugin, map] of this.entries) {
      const next = new Map<string, Entry>();
      for (const [key, { value }] of map) {
        const plain = value as string;
        next.set(key, { sealed: cipher.seal(plain, associatedData(plugin, key)), value });
        count += 1;
      }
      entries.set(plugin, next);
    }
    return { entries, count };
  }
}

/** Decrypts every sealed value; one that fails authentication is kept, without a value. */
export function openEntries(sealed: SealedEntries, cipher: SecretCipher): Entries {
  const entries: Entries = new Map();
  for (const [plugin, keys] of sealed) {
    const map = new Map<string, Entry>();
    for (const [key, value] of keys) {
      let plain: string | undefined;
      try {
        plain = cipher.open(value, associatedData(plugin, key));
      } catch (err) {
        if (!(err instanceof SecretDecryptError)) throw err;
        plain = undefined;
      }
      map.set(key, { sealed: value, value: plain });
    }
    entries.set(plugin, map);
  }
  return entries;
}

/** The sealed values of `entries`, as the codec and the database keep them. */
export function sealedOf(entries: Entries): SealedEntries {
  return new Map(
    [...entries].map(([plugin, map]) => [
      plugin,
      new Map([...map].map(([key, entry]) => [key, entry.sealed])),
    ]),
  );
}
