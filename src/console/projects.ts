import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** A project the console offers: a sub-folder of PROJECTS_DIR. */
export interface Project {
  readonly name: string;
  /** Absolute real path (what plugins get as `context.project.path`). */
  readonly path: string;
}

/** More would make an unusable picker; the first ones by name are listed. */
export const MAX_PROJECTS = 500;

/**
 * The sub-folders of `dir`, by name, without hidden ones (`.git`, `.cache`). A symlink counts
 * when it leads to a folder (its real path is given). A missing or unreadable `dir` is no
 * projects, not an error: the console then offers none.
 */
export async function listProjects(dir: string | undefined): Promise<Project[]> {
  if (dir === undefined) return [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch {
    return [];
  }
  const projects: Project[] = [];
  for (const name of names) {
    if (projects.length >= MAX_PROJECTS) break;
    try {
      const path = await realpath(join(dir, name));
      if ((await stat(path)).isDirectory()) projects.push({ name, path });
    } catch {
      // Gone, or a link that leads nowhere: not a project.
    }
  }
  return projects;
}
