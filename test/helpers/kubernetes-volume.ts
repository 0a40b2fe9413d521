import {
  existsSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

let generation = 0;

/**
 * Writes `files` into `dir` the way kubelet updates a Secret volume: a new hidden timestamped
 * folder, the `..data` symlink swapped to it with one rename, `KEY -> ..data/KEY` links, and
 * the previous folder removed.
 */
export function writeSecretVolume(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  const folder = `..2024_01_01_00_00_00.${++generation}`;
  mkdirSync(join(dir, folder));
  for (const [key, content] of Object.entries(files))
    writeFileSync(join(dir, folder, key), content);
  const data = join(dir, '..data');
  const previous = existsSync(data) ? readlinkSync(data) : undefined;
  symlinkSync(folder, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), data);
  for (const key of Object.keys(files)) {
    const link = join(dir, key);
    if (!existsSync(link)) symlinkSync(join('..data', key), link);
  }
  if (previous !== undefined) rmSync(join(dir, previous), { recursive: true, force: true });
}
