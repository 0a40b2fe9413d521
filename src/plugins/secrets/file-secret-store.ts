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
import { SecretCipher } from './secret-cipher';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import { buildStoreFile, parseStoreFile } from './secret-store.codec';
import {
  DecryptedSecrets,
  Entries,
  openEntries,
  SecretStore,
  SecretStoreLocation,
  sealedOf,
} from './secret-store';

/** Temporary files older than this are leftovers of a crash, not a write in progress. */
const STALE_TEMP_MS = 60_000;

/**
 * Per-plugin secret values in one file in DATA_DIR, each sealed with AES-256-GCM (fresh nonce
 * per write) and bound to its plugin and key, so that editing a value or moving it to another
 * plugin or key is detected. The file's layout is secret-store.codec.ts; this class does the
 * disk: reads, atomic writes one at a time, and removing temp files a crash left behind.
 * Values are kept decrypted in memory after `load`, so reads are synchronous. Before a write,
 * and on `refresh`, the file is re-read if something else replaced it (a restored backup, a
 * rotation), so no write is ever based on a stale copy.
 */
export class FileSecretStore extends DecryptedSecrets implements SecretStore {
  /** The file as last read or written (`absent` when there was none); undefined before load. */
  private stamp: string | undefined;
  private readonly writes = new SerialQueue();

  public constructor(
    public readonly file: string,
    private cipher: SecretCipher,
    private readonly ops: AtomicFileOps = nodeAtomicFileOps,
  ) {
    super();
  }

  public get location(): SecretStoreLocation {
    return { file: this.file };
  }

  /** Reads and decrypts the file (synchronously: it is small). A missing file is an empty store. */
  public load(): void {
    this.removeStaleTempFiles();
    this.readFromDisk();
    if (this.corruption !== undefined) throw this.corruption;
  }

  /** Re-reads the file if it was replaced since it was last read or written (a restore). */
  public refresh(): boolean {
    if (this.stamp !== undefined && this.currentStamp() === this.stamp) return false;
    this.readFromDisk();
    return true;
  }

  public set(plugin: PluginName, key: string, value: string): Promise<void> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      await this.write(this.withValue(this.cipher, plugin, key, value), this.cipher.keyId);
    });
  }

  public delete(plugin: PluginName, key: string): Promise<boolean> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      if (!this.has(plugin, key)) return false;
      await this.write(this.without(plugin, key), this.cipher.keyId);
      return true;
    });
  }

  /** Re-seals every value with `cipher` in one atomic write (see SecretStore). */
  public rekey(cipher: SecretCipher): Promise<number> {
    return this.writes.run(async () => {
      this.ensureCurrent();
      const { entries: next, count } = this.resealed(cipher);
      await this.write(next, cipher.keyId);
      this.cipher = cipher;
      return count;
    });
  }

  private ensureCurrent(): void {
    this.refresh();
    this.assertUsable();
  }

  private async write(entries: Entries, keyId: string): Promise<void> {
    const sealed = sealedOf(entries);
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
      this.entries = openEntries(parseStoreFile(text, this.cipher.keyId), this.cipher);
    } catch (err) {
      if (!(err instanceof SecretStoreCorruptError)) throw err;
      this.corruption = err;
    }
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
