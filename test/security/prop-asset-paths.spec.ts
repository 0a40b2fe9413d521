import fc from 'fast-check';
import { posix, resolve, sep } from 'node:path';

import { toAssetPath } from '../../src/plugins/assets/asset-path';
import { isInsideDir, isRelativePluginPath } from '../../src/plugins/manifest/plugin-path';

const RUNS = Number(process.env.FC_NUM_RUNS ?? 1000);
const ROOT = resolve('/srv/plugins/echo');
const PREFIX = '/api/plugins/echo/assets/';

/** Pieces an attacker strings together to climb out of a folder, raw and encoded. */
const climbPiece = fc.constantFrom(
  '.',
  '..',
  '...',
  '/',
  '//',
  '\\',
  '%2e',
  '%2E',
  '%2e%2e',
  '.%2e',
  '%2e.',
  '%252e%252e',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '%00',
  '%',
  '%%32%65',
  '\0',
  'C:',
  '~',
  'a',
  'index.js',
  '.env',
  '%c0%ae',
  '%u002e',
  '?',
  '#',
);

/** A request path after the `/assets/` prefix: attack pieces, plain text, or anything at all. */
const rawRest = fc.oneof(
  fc.array(climbPiece, { maxLength: 12 }).map((parts) => parts.join('')),
  fc
    .array(fc.oneof(climbPiece, fc.string({ maxLength: 6 })), { maxLength: 8 })
    .map((p) => p.join('/')),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

/**
 * What the router hands the controller for `assets/*path`: the raw path cut at `/`, each segment
 * percent-decoded once (Express 5 answers 400 when a segment does not decode).
 */
function routerSegments(rest: string): string[] | undefined {
  const path = rest.split('?', 1)[0] ?? '';
  try {
    return path.split('/').map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

/** True when `rel` names ROOT itself or something below it, read the way `fs` would. */
function staysInside(rel: string): boolean {
  return isInsideDir(ROOT, resolve(ROOT, rel)) && !posix.isAbsolute(rel) && !rel.includes('\0');
}

describe('asset paths', () => {
  it('any request path, raw or percent-encoded → nothing outside the plugin folder', () => {
    fc.assert(
      fc.property(rawRest, (rest) => {
        const segments = routerSegments(rest);
        fc.pre(segments !== undefined);
        const rel = toAssetPath(segments, PREFIX + rest);
        if (rel === undefined) return;
        expect(staysInside(rel)).toBe(true);
        expect(rel.split('/')).not.toContain('..');
      }),
      { numRuns: RUNS },
    );
  });

  it('any wildcard value, array or string → a relative path inside the folder, or refused', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.oneof(climbPiece, fc.string({ unit: 'binary', maxLength: 8 })), {
            maxLength: 8,
          }),
          fc.string({ unit: 'binary', maxLength: 40 }),
          fc.constantFrom<unknown>(undefined, null, 42, {}, [1, 2], ['a', 3]),
        ),
        fc.string({ maxLength: 20 }),
        (wildcard, rawRestOfUrl) => {
          const rel = toAssetPath(wildcard, PREFIX + rawRestOfUrl);
          if (rel === undefined) return;
          expect(typeof rel).toBe('string');
          expect(rel.length).toBeGreaterThan(0);
          expect(staysInside(rel)).toBe(true);
          expect(rel).not.toMatch(/\\|\0/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('encoded dot segments (%2e%2e, .%2e, %2e.) → refused', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', 'index.js'), { maxLength: 3 }),
        fc.constantFrom('%2e%2e', '%2E%2E', '.%2e', '%2e.', '%2E.'),
        fc.array(fc.constantFrom('a', 'manifest.json', '..'), { maxLength: 3 }),
        (before, dots, after) => {
          const rest = [...before, dots, ...after].join('/');
          const segments = routerSegments(rest);
          expect(segments).toBeDefined();
          expect(toAssetPath(segments, PREFIX + rest)).toBeUndefined();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('any manifest entry path accepted as relative → resolves inside the plugin folder', () => {
    fc.assert(
      fc.property(rawRest, (path) => {
        fc.pre(isRelativePluginPath(path));
        const full = resolve(ROOT, path);
        expect(full === ROOT || full.startsWith(ROOT + sep)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
