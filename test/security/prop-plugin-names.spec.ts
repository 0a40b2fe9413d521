import fc from 'fast-check';
import { posix } from 'node:path';

import { isPluginName, PLUGIN_NAME_PATTERN } from '../../src/plugins/shared/plugin.types';

const RUNS = Number(process.env.FC_NUM_RUNS ?? 1000);

/** Strings close to names: name characters mixed with separators, dots, escapes and unicode. */
const nameLike = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom(
      'a',
      'Z',
      '0',
      '_',
      '-',
      '.',
      '/',
      '\\',
      '%',
      '2e',
      '%2f',
      '\0',
      ' ',
      'é',
    ),
    maxLength: 40,
  }),
  fc.stringMatching(/^[a-zA-Z0-9_-]{1,140}$/),
);

describe('plugin names', () => {
  it('any string → accepted only if it matches ^[a-zA-Z0-9_-]{1,128}$', () => {
    fc.assert(
      fc.property(nameLike, (s) => {
        const accepted = isPluginName(s);
        expect(accepted).toBe(PLUGIN_NAME_PATTERN.test(s) && s.length <= 128);
      }),
      { numRuns: RUNS },
    );
  });

  it('any accepted name → one literal URL segment and one direct child folder', () => {
    fc.assert(
      fc.property(nameLike, (s) => {
        fc.pre(isPluginName(s));
        expect(encodeURIComponent(s)).toBe(s);
        expect(decodeURIComponent(s)).toBe(s);
        const folder = posix.join('/srv/plugins', s);
        expect(posix.dirname(folder)).toBe('/srv/plugins');
        expect(posix.basename(folder)).toBe(s);
      }),
      { numRuns: RUNS },
    );
  });

  it('dot segments, separators, escapes and NUL → never a name', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('.', '..', '/', '\\', '%', '\0', ' ', '\n', '?', '#', ':'),
        fc.string({ maxLength: 10 }),
        fc.string({ maxLength: 10 }),
        (bad, before, after) => {
          expect(isPluginName(before + bad + after)).toBe(false);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
