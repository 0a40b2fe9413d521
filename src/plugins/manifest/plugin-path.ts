import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';

import { PLUGIN_PATH_MAX_LENGTH } from './manifest.constants';

/**
 * True for a path that can only name something inside the plugin folder: relative, `/`-separated,
 * no `..` segment, no backslash (a separator on Windows, a trap everywhere else), no NUL.
 */
export function isRelativePluginPath(path: string): boolean {
  if (path.length === 0 || path.length > PLUGIN_PATH_MAX_LENGTH) return false;
  if (path.includes('\0') || path.includes('\\')) return false;
  if (path.startsWith('/') || isAbsolute(path) || /^[a-zA-Z]:/.test(path)) return false;
  return path.split('/').every((segment) => segment !== '..');
}

/** True when a segment names a dotfile or dot-folder (`.env`, `.git/`): those are never served. */
export function hasHiddenSegment(path: string): boolean {
  return path.split('/').some((segment) => segment.startsWith('.') && segment !== '.');
}

/** True when `candidate` is `dir` itself or below it (both absolute, resolved). */
export function isInsideDir(dir: string, candidate: string): boolean {
  return candidate === dir || candidate.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * The real path of the regular file `relPath` names inside `dir` (itself a real path), or
 * undefined when it does not exist, is not a regular file, or resolves (through a symlink)
 * outside `dir`.
 */
export async function realFileInside(dir: string, relPath: string): Promise<string | undefined> {
  if (!isRelativePluginPath(relPath)) return undefined;
  let real: string;
  try {
    real = await realpath(join(dir, relPath));
  } catch {
    return undefined;
  }
  if (!isInsideDir(dir, real) || real === dir) return undefined;
  try {
    return (await stat(real)).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}
