import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { BigIntStats } from 'node:fs';

/** The part of a FileHandle an atomic write needs. */
export interface WritableFile {
  writeFile(data: Buffer): Promise<void>;
  sync(): Promise<void>;
  stat(options: { bigint: true }): Promise<BigIntStats>;
  close(): Promise<void>;
}

/** The file system calls behind an atomic write; tests replace them to fail half-way. */
export interface AtomicFileOps {
  open(path: string, flags: string, mode: number): Promise<WritableFile>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string): Promise<void>;
  /** Makes a rename in `dir` durable. */
  syncDir(dir: string): Promise<void>;
}

export const nodeAtomicFileOps: AtomicFileOps = {
  open: (path, flags, mode) => open(path, flags, mode),
  rename,
  rm: (path) => rm(path, { force: true }),
  syncDir: async (dir) => {
    try {
      const handle = await open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch {
      // Some platforms cannot fsync a directory; the rename is then as durable as they allow.
    }
  },
};

/** Temporary files of an atomic write of `file` are `<name>.<pid>.<random>.tmp` next to it. */
export function isTempFileOf(file: string, candidate: string): boolean {
  const name = basename(file);
  return (
    candidate.startsWith(`${name}.`) && candidate.endsWith('.tmp') && candidate.length > name.length
  );
}

/**
 * Replaces `file` with `data` so that a crash at any point leaves either the old or the new
 * content, never a mix: write a temporary file in the same folder (mode 0600), fsync it, rename
 * it over `file`, fsync the folder. On failure the temporary file is removed and `file` is
 * untouched. Returns the stats of the new file (inode, size, mtime) to recognise it later.
 */
export async function writeFileAtomic(
  file: string,
  data: Buffer,
  ops: AtomicFileOps = nodeAtomicFileOps,
): Promise<BigIntStats> {
  const dir = dirname(file);
  const temp = join(dir, `${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let stats: BigIntStats;
  try {
    const handle = await ops.open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
      stats = await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
    await ops.rename(temp, file);
  } catch (err) {
    await ops.rm(temp).catch(() => undefined);
    throw err;
  }
  await ops.syncDir(dir);
  return stats;
}
