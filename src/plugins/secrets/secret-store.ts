import {
  closeSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { BigIntStats } from 'node:fs';

import {
  AtomicFileOps,
  isTempFileOf,
  nodeAtomicFileOps,
  writeFileAtomic,
} from '../../common/atomic-file';
import { SerialQueue } from '../../common/serial-queue';
import type { PluginName } from '../shared/plugin.types';
import { SealedValue, SecretCipher, SecretDecryptError } from './secret-cipher';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import {
  associatedData,
  buildStoreFile,
  parseStoreFile,
  SealedEntries,
} from './secret-store.codec';

/** Temporary files older than this are leftovers of a crash, not a write in progress. */
const STALE_TEMP_MS = 60_000;

interface Entry {
  readonly sealed: SealedValue;
  /** undefined: the value failed authentication. */
  readonly value: string | undefined;
}

type Entries = Map<PluginName, Map<string, Entry>>;

/**
 * Per-plugin secret values in one file in DATA_DIR, each sealed with AES-256-GCM (fresh nonce
 * per write) and bound to its plugin and key, so that editing a value or moving it to another
 * plugin or key is detected. The file's layout is secret-store.codec.ts; this class does the
 * disk: reads, atomic writes one at a time, and removing temp files a crash left behind.
 * Values are kept decrypted in memory after `load`, so reads are synchronous. Before a write,
 * and on `refresh`, the file is re-read if something else replaced it (a restored backup, a
 * rotation), so no write is ever based on a stale copy.
 */
export class SecretStore {
  private entries: Entries = new Map();
  private corruption: SecretStoreCorruptError | undefined;
  /** The file as last read or written (`absent` when there was none); undefined before load. */
  private stamp: string | undefined;
  private revisionCounter = 0;
  private readonly writes = new SerialQueue();

  public constructor(
    public readonly file: string,
    private cipher: SecretCipher,
    private readonly ops: AtomicFileOps = nodeAtomicFileOps,
  ) {}

  /** Changes whenever the values in memory may have changed (for caches built from them). */
  public get revision(): number {
    return this.revisionCounter;
  }

  /** Why the whole store is unusable, if it is. */
  public get corrupt(): SecretStoreCorruptError | undefined {
    return this.corruption;
  }

  /**
   * Reads and decrypts the file (synchronously: it is small). Throws SecretStoreCorruptError,
   * and remembers it, when the whole store is unusable; single values that fail authentication
   * are remembered and reported by `read`. A missing file is an empty store.
   */
  public load(): void {
    this.removeStaleTempFiles();
    this.readFromDisk();
    if (this.corruption !== undefined) throw this.corruption;
  }

  /** Re-reads the file if it was replaced since it was last read or written; true if it was. */
  public refresh(): boolean {
    if (this.stamp !== undefined && this.currentStamp() === this.stamp) return false;
    this.readFromDisk();
    return true;
  }

  /** The stored value; SecretStoreCorruptError when the store or this value can't be trusted. */
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

  /** Whether a value (readable or not) is stored for this plugin and key. */
  public has(plugin: PluginName, key: string): boolean {
    return this.entries.get(plugin)?.has(key) === true;
  }

  /** Every readable value of the plugin. */
  public values(plugin: PluginName): string[] {
    const out: string[] = [];
    for (const entry of this.entries.get(plugin)?.values() ?? [])
      if (entry.value !== undefined) out.push(entry.value);
    return out;
  }

  /** `plugin/KEY` of every value that failed authentication. */
  public corruptEntries(): string[] {
    const out: string[] = [];
    for (const [plugin, map] of this.entries)
      for (const [key, entry] of map) if (entry.value === undefined) out.push(`${plugin}/${key}`);
    return out.sort();
  }

  /** Stores (or replaces) a value; also the way to overwrite a single value that was altered. */
  public set(plugin: PluginName, key: string, value: string): Promise<void> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      const next = new Map(this.entries);
      const forPlugin = new Map(next.get(plugin));
      forPlugin.set(key, { sealed: this.cipher.seal(value, associatedData(plugin, key)), value });
      next.set(plugin, forPlugin);
      await this.write(next, this.cipher.keyId);
    });
  }

  /** Removes a stored value; false when there was none. */
  public delete(plugin: PluginName, key: string): Promise<boolean> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      if (!this.has(plugin, key)) return false;
      const next = new Map(this.entries);
      const forPlugin = new Map(next.get(plugin));
      forPlugin.delete(key);
      if (forPlugin.size === 0) next.delete(plugin);
      else next.set(plugin, forPlugin);
      await this.write(next, this.cipher.keyId);
      return true;
    });
  }

  /**
   * Re-seals every value with `cipher` (fresh nonces) in one atomic write, then uses it from
   * now on. Refuses, changing nothing, if any value can't be decrypted with the current key.
   * Returns how many values were re-sealed.
   */
  public rekey(cipher: SecretCipher): Promise<number> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      const bad = this.corruptEntries();
      if (bad.length > 0)
        throw new SecretStoreCorruptError(
          `${bad.length} stored value(s) failed authentication: ${bad.join(', ')}`,
        );
      const next: Entries = new Map();
      let count = 0;
      for (const [plugin, map] of this.entries) {
        const resealed = new Map<string, Entry>();
        for (const [key, { value }] of map) {
          const plain = value as string;
          resealed.set(key, { sealed: cipher.seal(plain, associatedData(plugin, key)), value });
          count += 1;
        }
        next.set(plugin, resealed);
      }
      await this.write(next, cipher.keyId);
      this.cipher = cipher;
      return count;
    });
  }

  private ensureCurrent(): void {
    this.refresh();
    if (this.corruption !== undefined) throw this.corruption;
  }

  private async write(entries: Entries, keyId: string): Promise<void> {
    const sealed: SealedEntries = new Map(
      [...entries].map(([plugin, map]) => [
        plugin,
        new Map([...map].map(([key, entry]) => [key, entry.sealed])),
      ]),
    );
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const stats = await writeFileAtomic(
      this.file,
      Buffer.from(buildStoreFile(sealed, keyId)),
      this.ops,
    );
    this.entries = entries;
    this.corruption = undefined;
    this.stamp = stampOf(stats);
    this.revisionCounter += 1;
  }

  private readFromDisk(): void {
    this.revisionCounter += 1;
    this.entries = new Map();
    this.corruption = undefined;
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.stamp = this.currentStamp();
      if (code !== 'ENOENT')
        this.corruption = new SecretStoreCorruptError(`cannot be read (${code})`);
      return;
    }
    let text: string;
    try {
      this.stamp = stampOf(fstatSync(fd, { bigint: true }));
      text = readFileSync(fd, 'utf8');
    } catch (err) {
      this.corruption = new SecretStoreCorruptError(
        `cannot be read (${(err as NodeJS.ErrnoException).code})`,
      );
      return;
    } finally {
      closeSync(fd);
    }
    try {
      this.entries = this.open(parseStoreFile(text, this.cipher.keyId));
    } catch (err) {
      if (!(err instanceof SecretStoreCorruptError)) throw err;
      this.corruption = err;
    }
  }

  /** Decrypts every sealed value; one that fails authentication is kept, without a value. */
  private open(sealed: SealedEntries): Entries {
    const entries: Entries = new Map();
    for (const [plugin, keys] of sealed) {
      const map = new Map<string, Entry>();
      for (const [key, value] of keys) {
        let plain: string | undefined;
        try {
          plain = this.cipher.open(value, associatedData(plugin, key));
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

  private currentStamp(): string {
    try {
      return stampOf(statSync(this.file, { bigint: true }));
    } catch {
      return 'absent';
    }
  }

  /** Leftovers of a crash mid-write; they hold sealed values only, but clutter DATA_DIR. */
  private removeStaleTempFiles(): void {
    const dir = dirname(this.file);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!isTempFileOf(this.file, name)) continue;
      const path = join(dir, name);
      try {
        if (Date.now() - statSync(path).mtimeMs > STALE_TEMP_MS) rmSync(path, { force: true });
      } catch {
        // gone already
      }
    }
  }
}

function stampOf(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`;
}
