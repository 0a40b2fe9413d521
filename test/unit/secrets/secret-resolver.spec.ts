import {
  missingRequired,
  resolveSecrets,
  secretHeaders,
  spawnSecrets,
  StoreLookup,
} from '../../../src/plugins/secrets/secret-resolver';

const declarations = [
  { key: 'GITHUB_TOKEN', required: true },
  { key: 'WEBHOOK_SECRET' },
  { key: 'MODEL_KEY', required: false },
];

/** A store answering from `values`; `unavailable` for every key when a reason is given. */
const storeOf =
  (values: Record<string, string>, unavailable?: string) =>
  (key: string): StoreLookup => {
    if (unavailable !== undefined) return { kind: 'unavailable', reason: unavailable };
    const value = values[key];
    return value === undefined ? { kind: 'absent' } : { kind: 'value', value };
  };

describe('secret sources and precedence', () => {
  describe('resolveSecrets', () => {
    it('takes a mounted file over the store, and the store over nothing', () => {
      const resolved = resolveSecrets(
        declarations,
        new Map([['GITHUB_TOKEN', 'from-file']]),
        storeOf({ GITHUB_TOKEN: 'from-store', WEBHOOK_SECRET: 'whsec' }),
      );
      expect(resolved).toEqual([
        { key: 'GITHUB_TOKEN', required: true, value: 'from-file', source: 'file' },
        { key: 'WEBHOOK_SECRET', required: false, value: 'whsec', source: 'store' },
        { key: 'MODEL_KEY', required: false, value: undefined, source: null },
      ]);
    });

    it('takes an empty mounted file as a value', () => {
      const [first] = resolveSecrets(
        declarations,
        new Map([['GITHUB_TOKEN', '']]),
        storeOf({ GITHUB_TOKEN: 'from-store' }),
      );
      expect(first).toMatchObject({ value: '', source: 'file' });
    });

    it('asks the store only for keys no file provides', () => {
      const stored = jest.fn(storeOf({}));
      resolveSecrets(declarations, new Map([['GITHUB_TOKEN', 'from-file']]), stored);
      expect(stored.mock.calls).toEqual([['WEBHOOK_SECRET'], ['MODEL_KEY']]);
    });

    it('marks keys the store could not answer for, and only those', () => {
      const resolved = resolveSecrets(
        declarations,
        new Map([['GITHUB_TOKEN', 'from-file']]),
        storeOf({}, 'secret store is corrupt: x'),
      );
      expect(resolved.map((r) => r.unavailable)).toEqual([
        undefined,
        'secret store is corrupt: x',
        'secret store is corrupt: x',
      ]);
      expect(resolved.every((r) => r.key === 'GITHUB_TOKEN' || r.value === undefined)).toBe(true);
    });

    it('resolves nothing for a plugin that declares nothing', () => {
      expect(resolveSecrets([], new Map([['X_KEY', 'v']]), storeOf({ X_KEY: 'v' }))).toEqual([]);
    });
  });

  describe('what a plugin gets', () => {
    const resolve = (files: Record<string, string>, stored: Record<string, string> = {}) =>
      resolveSecrets(declarations, new Map(Object.entries(files)), storeOf(stored));

    it('spawns with every set value by key', () => {
      expect(spawnSecrets(resolve({ GITHUB_TOKEN: 'a' }, { MODEL_KEY: 'b' }))).toEqual({
        ok: true,
        env: { GITHUB_TOKEN: 'a', MODEL_KEY: 'b' },
      });
    });

    it('refuses a spawn with a required value missing, naming every missing key', () => {
      const resolved = resolveSecrets(
        [{ key: 'A_KEY', required: true }, { key: 'B_KEY', required: true }, { key: 'C_KEY' }],
        new Map(),
        storeOf({}),
      );
      expect(missingRequired(resolved)).toEqual(['A_KEY', 'B_KEY']);
      expect(spawnSecrets(resolved)).toEqual({
        ok: false,
        reason: 'missing required secrets: A_KEY, B_KEY',
      });
    });

    it('refuses a spawn when the store cannot answer, even for an optional key', () => {
      const resolved = resolveSecrets(
        [{ key: 'GITHUB_TOKEN', required: true }, { key: 'OPTIONAL' }],
        new Map([['GITHUB_TOKEN', 'from-file']]),
        storeOf({}, 'secret store is corrupt: sealed with another SECRETS_KEY'),
      );
      expect(missingRequired(resolved)).toEqual([]);
      expect(spawnSecrets(resolved)).toEqual({
        ok: false,
        reason: 'secret store is corrupt: sealed with another SECRETS_KEY',
      });
    });

    it('sends as headers only values a header can carry', () => {
      const resolved = resolve(
        { GITHUB_TOKEN: 'ghp_token\twith tab', WEBHOOK_SECRET: 'line\nbreak' },
        { MODEL_KEY: 'x'.repeat(8 * 1024 + 1) },
      );
      expect(secretHeaders(resolved)).toEqual({
        'x-plugin-secret-github_token': 'ghp_token\twith tab',
      });
      expect(secretHeaders(resolve({}, { MODEL_KEY: 'é' }))).toEqual({});
      expect(secretHeaders(resolve({}, { MODEL_KEY: 'y'.repeat(8 * 1024) }))).toEqual({
        'x-plugin-secret-model_key': 'y'.repeat(8 * 1024),
      });
    });
  });
});
