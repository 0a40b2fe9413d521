import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository root (this file is test/unit/docs/markdown.ts). */
export const REPO_ROOT = join(__dirname, '..', '..', '..');

export function readRepoFile(path: string): string {
  return readFileSync(join(REPO_ROOT, path), 'utf8');
}

/**
 * The body of the first fenced code block in `language` after `marker`, so a test can run the
 * code a doc shows instead of a copy of it. Throws when either is missing.
 */
export function codeBlockAfter(markdown: string, marker: string, language: string): string {
  const at = markdown.indexOf(marker);
  if (at === -1) throw new Error(`marker ${marker} not found`);
  const fence = '```' + language + '\n';
  const start = markdown.indexOf(fence, at);
  const end = start === -1 ? -1 : markdown.indexOf('\n```', start + fence.length);
  if (start === -1 || end === -1) throw new Error(`no ${language} block after ${marker}`);
  return markdown.slice(start + fence.length, end + 1);
}
