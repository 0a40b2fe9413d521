import { Inject, Injectable, Logger } from '@nestjs/common';

import { PluginRegistry } from '../manifest/plugin-registry.service';
import type { PluginName } from '../shared/plugin.types';
import { MountedSecrets, MountedTargets } from './mounted-secrets';
import { ResolvedSecret, resolveSecrets, StoreLookup } from './secret-resolver';
import type { SecretStore } from './secret-store';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import { MOUNTED_SECRETS, SECRET_STORE } from './secrets.providers';

/** Why there is no store at all; a read then answers as a corrupt store would. */
const NO_KEY = 'SECRETS_KEY is not set';
const ABSENT: StoreLookup = { kind: 'absent' };

/**
 * Where each plugin's values come from: the encrypted store (SECRET_STORE) and the mounted
 * files (MOUNTED_SECRETS), for the keys its manifest declares; resolveSecrets says which wins.
 * Reports a corrupt store once, however often it is read. Knows values, never says them: the
 * errors and logs here carry reasons and key names only.
 */
@Injectable()
export class SecretSources {
  private readonly logger = new Logger(SecretSources.name);
  /** The corruption last logged, so it is reported once and not on every spawn. */
  private reported: string | undefined;

  public constructor(
    @Inject(SECRET_STORE) private readonly store: SecretStore | null,
    @Inject(MOUNTED_SECRETS) private readonly mounted: MountedSecrets | null,
    private readonly registry: PluginRegistry,
  ) {}

  /** Whether there is a store to write to (SECRETS_KEY is set). */
  public get writable(): boolean {
    return this.store !== null;
  }

  /** Changes whenever a value of any plugin may have changed (for caches built from them). */
  public get revision(): string {
    return `${this.store?.revision ?? 0}:${this.mounted?.revision ?? 0}`;
  }

  /**
   * Reads the store: synchronously for the file, asynchronously for the database. A corrupt
   * store never stops the host: it is logged once, and plugins that need a stored value refuse
   * to start.
   */
  public load(): void | Promise<void> {
    if (this.store === null) {
      this.logger.error({ event: 'secret_store_unavailable', reason: NO_KEY });
      return;
    }
    let loading: void | Promise<void>;
    try {
      loading = this.store.load();
    } catch (err) {
      this.loaded(err);
      return;
    }
    if (loading instanceof Promise)
      return loading.then(
        () => this.loaded(),
        (err: unknown) => this.loaded(err),
      );
    this.loaded();
  }

  /** The keys the plugin's manifest declares (none for an unknown plugin). */
  public declaredKeys(name: PluginName): string[] {
    return this.declarations(name).map((d) => d.key);
  }

  /** Each declared secret of the plugin with its current value and source. */
  public resolve(name: PluginName): ResolvedSecret[] {
    const declarations = this.declarations(name);
    if (declarations.length === 0) return [];
    const keys = declarations.map((d) => d.key);
    const files = this.mounted?.values(name, keys) ?? new Map<string, string>();
    return resolveSecrets(declarations, files, (key) => this.lookup(name, key));
  }

  /** Re-reads the store file if it was replaced and the plugin's mounted files (for a spawn). */
  public refresh(name: PluginName): void {
    if (this.store?.refresh() === true) this.reportCorruption();
    this.refreshMounted(name);
  }

  /** Re-reads the plugin's mounted files now; true if a value changed. */
  public refreshMounted(name: PluginName): boolean {
    const keys = this.declaredKeys(name);
    if (this.mounted === null || keys.length === 0) return false;
    return this.mounted.refresh(name, keys);
  }

  /**
   * Watches the mounted files of every plugin that declares secrets and calls `onChange(name)`
   * when they changed; returns a function that stops it (nothing to watch without a folder).
   */
  public watchMounted(onChange: (name: PluginName) => void): () => void {
    if (this.mounted === null) return () => undefined;
    return this.mounted.watch(() => this.mountedTargets(), onChange);
  }

  /**
   * Calls `onChange(names)` when values of these plugins were changed from outside this process
   * (another replica writing the shared store); returns a function that stops it.
   */
  public watchStore(onChange: (names: readonly PluginName[]) => void): () => void {
    return (
      this.store?.watch?.((names) => {
        this.reportCorruption();
        onChange(names);
      }) ?? (() => undefined)
    );
  }

  /** Whether a mounted file provides this declared key. */
  public isMounted(name: PluginName, key: string): boolean {
    const keys = this.declaredKeys(name);
    return this.mounted !== null && this.mounted.values(name, keys).has(key);
  }

  /** Whether the store holds a value (readable or not) for this key. */
  public isStored(name: PluginName, key: string): boolean {
    return this.store?.has(name, key) === true;
  }

  /** Every value of the plugin known right now, from the store and the files (for redaction). */
  public values(name: PluginName): string[] {
    const keys = this.declaredKeys(name);
    const mounted =
      this.mounted === null || keys.length === 0 ? [] : this.mounted.values(name, keys).values();
    return [...(this.store?.values(name) ?? []), ...mounted];
  }

  /** Stores a value; SecretStoreCorruptError (reported once) when the store can't be written. */
  public async write(name: PluginName, key: string, value: string): Promise<void> {
    await this.reportingCorruption(() => this.requireStore().set(name, key, value));
  }

  /** Removes a stored value; false when there was none. Errors as for `write`. */
  public remove(name: PluginName, key: string): Promise<boolean> {
    return this.reportingCorruption(() => this.requireStore().delete(name, key));
  }

  private declarations(name: PluginName): ReadonlyArray<{ key: string; required?: boolean }> {
    return this.registry.get(name)?.manifest?.secrets ?? [];
  }

  private lookup(name: PluginName, key: string): StoreLookup {
    if (this.store === null)
      return { kind: 'unavailable', reason: new SecretStoreCorruptError(NO_KEY).message };
    try {
      const value = this.store.read(name, key);
      return value === undefined ? ABSENT : { kind: 'value', value };
    } catch (err) {
      if (!(err instanceof SecretStoreCorruptError)) throw err;
      return { kind: 'unavailable', reason: err.message };
    }
  }

  private mountedTargets(): MountedTargets {
    const targets = new Map<PluginName, readonly string[]>();
    for (const descriptor of this.registry.list()) {
      const keys = this.declaredKeys(descriptor.name);
      if (keys.length > 0) targets.set(descriptor.name, keys);
    }
    return targets;
  }

  private requireStore(): SecretStore {
    if (this.store === null) throw new SecretStoreCorruptError(NO_KEY);
    return this.store;
  }

  private async reportingCorruption<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (err instanceof SecretStoreCorruptError) this.reportCorruption();
      throw err;
    }
  }

  /** After a load: a corrupt store is reported; any other failure is the caller's. */
  private loaded(err?: unknown): void {
    if (err !== undefined && !(err instanceof SecretStoreCorruptError)) throw err;
    this.reportCorruption();
  }

  private reportCorruption(): void {
    if (this.store === null) return;
    const whole = this.store.corrupt;
    const entries = this.store.corruptEntries();
    const reason =
      whole !== undefined
        ? whole.reason
        : entries.length > 0
          ? `${entries.length} stored value(s) failed authentication`
          : undefined;
    const fingerprint = reason === undefined ? undefined : `${reason}|${entries.join(',')}`;
    if (fingerprint !== undefined && fingerprint !== this.reported)
      this.logger.error({
        event: 'secret_store_corrupt',
        ...this.store.location,
        reason,
        ...(entries.length > 0 ? { entries } : {}),
      });
    this.reported = fingerprint;
  }
}
