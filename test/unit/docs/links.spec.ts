import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

import { readRepoFile, REPO_ROOT } from './markdown';

/** The repository's Markdown: README.md, bench/README.md and every docs/*.md. */
const DOCS = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Text without fenced code blocks, where `#` and `[a](b)` mean nothing. */
function withoutCodeBlocks(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** Text without code of either kind, where `[a](b)` is not a link. */
function prose(markdown: string): string {
  return withoutCodeBlocks(markdown).replace(/`[^`\n]*`/g, '');
}

/** Targets of inline links and images, `[text](target)` / `![alt](target)`. */
function linkTargets(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map(
    (m) => m[1] as string,
  );
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file has, numbered as GitHub numbers repeated headings. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of withoutCodeBlocks(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(heading as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

const external = (target: string): boolean => /^[a-z][a-z0-9+.-]*:/i.test(target);

describe('relative links in the repository docs', () => {
  it.each(DOCS)('%s: every relative link names a file or folder in the repo', (doc) => {
    const broken = linkTargets(readRepoFile(doc))
      .filter((t) => !external(t) && !t.startsWith('#'))
      .filter((t) => {
        const path = normalize(join(dirname(doc), decodeURIComponent(t.split('#')[0] as string)));
        return path.startsWith('..') || !existsSync(join(REPO_ROOT, path));
      });
    expect(broken).toEqual([]);
  });

  it.each(DOCS)('%s: every #anchor names a heading of the file it points into', (doc) => {
    const broken = linkTargets(readRepoFile(doc))
      .filter((t) => !external(t) && t.includes('#'))
      .filter((t) => {
        const [file, anchor] = t.split('#') as [string, string];
        const target = file === '' ? doc : normalize(join(dirname(doc), file));
        const isMarkdownFile =
          target.endsWith('.md') &&
          existsSync(join(REPO_ROOT, target)) &&
          statSync(join(REPO_ROOT, target)).isFile();
        return !isMarkdownFile || !anchors(readRepoFile(target)).has(anchor);
      });
    expect(broken).toEqual([]);
  });

  it('no doc points outside the repository (../shared, /work)', () => {
    for (const doc of DOCS) {
      const text = readRepoFile(doc);
      expect({ doc, outside: /\.\.\/shared|\/work\/|CONTRACT\.md/.test(text) }).toEqual({
        doc,
        outside: false,
      });
    }
  });
});
