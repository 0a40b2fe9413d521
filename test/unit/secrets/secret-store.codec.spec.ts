import { SecretStoreCorruptError } from '../../../src/plugins/secrets/secret-store-corrupt.error';
import {
  associatedData,
  buildStoreFile,
  parseStoreFile,
} from '../../../src/plugins/secrets/secret-store.codec';

const KEY_ID = '0123456789abcdef';
const sealed = (n: number): { nonce: string; ciphertext: string; tag: string } => ({
  nonce: `nonce-${n}`,
  ciphertext: `ciphertext-${n}`,
  tag: `tag-${n}`,
});

/** A well-formed document, as JSON text, with `patch` applied to its top level. */
const documentWith = (patch: Record<string, unknown>): string =>
  JSON.stringify({
    format: 'portico-secrets',
    version: 1,
    cipher: 'aes-256-gcm',
    keyId: KEY_ID,
    secrets: { board: { GITHUB_TOKEN: sealed(1) } },
    ...patch,
  });

/** The reason parseStoreFile gives for `text`. */
const reasonFor = (text: string): string => {
  try {
    parseStoreFile(text, KEY_ID);
  } catch (err) {
    expect(err).toBeInstanceOf(SecretStoreCorruptError);
    return (err as SecretStoreCorruptError).reason;
  }
  throw new Error('expected SecretStoreCorruptError');
};

describe('the secret store file codec', () => {
  describe('buildStoreFile', () => {
    it('writes format, version, cipher and key id, plugins and keys sorted', () => {
      const text = buildStoreFile(
        new Map([
          ['zeta', new Map([['B_KEY', sealed(3)]])],
          [
            'alpha',
            new Map([
              ['Z_KEY', sealed(2)],
              ['A_KEY', sealed(1)],
            ]),
          ],
        ]),
        KEY_ID,
      );
      expect(text.endsWith('}\n')).toBe(true);
      const body = JSON.parse(text) as Record<string, unknown>;
      expect(body).toEqual({
        format: 'portico-secrets',
        version: 1,
        cipher: 'aes-256-gcm',
        keyId: KEY_ID,
        secrets: { alpha: { A_KEY: sealed(1), Z_KEY: sealed(2) }, zeta: { B_KEY: sealed(3) } },
      });
      expect(Object.keys(body.secrets as object)).toEqual(['alpha', 'zeta']);
      expect(Object.keys((body.secrets as Record<string, object>).alpha)).toEqual([
        'A_KEY',
        'Z_KEY',
      ]);
    });

    it('keeps a plugin called __proto__ as an entry, not a prototype', () => {
      const text = buildStoreFile(new Map([['__proto__', new Map([['KEY', sealed(1)]])]]), KEY_ID);
      expect(text).toContain('"__proto__": {');
      expect(parseStoreFile(text, KEY_ID).get('__proto__')?.get('KEY')).toEqual(sealed(1));
    });
  });

  describe('parseStoreFile', () => {
    it('reads back what buildStoreFile wrote', () => {
      const entries = new Map([
        [
          'board',
          new Map([
            ['GITHUB_TOKEN', sealed(1)],
            ['WEBHOOK_SECRET', sealed(2)],
          ]),
        ],
        ['assistant', new Map([['MODEL_KEY', sealed(3)]])],
      ]);
      expect(parseStoreFile(buildStoreFile(entries, KEY_ID), KEY_ID)).toEqual(entries);
    });

    it('keeps only the three fields of a sealed value and drops plugins without keys', () => {
      const parsed = parseStoreFile(
        documentWith({
          secrets: { board: { GITHUB_TOKEN: { ...sealed(1), extra: 'x' } }, empty: {} },
        }),
        KEY_ID,
      );
      expect(parsed).toEqual(new Map([['board', new Map([['GITHUB_TOKEN', sealed(1)]])]]));
    });

    it.each([
      ['text that is not JSON', '{"format":', 'the file is not valid JSON'],
      ['a JSON array', '[]', 'the file is not a Portico secret store'],
      [
        'another format',
        documentWith({ format: 'other' }),
        'the file is not a Portico secret store',
      ],
      ['a newer version', documentWith({ version: 2 }), 'unsupported store version 2'],
      ['no version', documentWith({ version: undefined }), 'unsupported store version (missing)'],
      ['another cipher', documentWith({ cipher: 'aes-128-cbc' }), 'unsupported cipher'],
      ['secrets that are not an object', documentWith({ secrets: [] }), 'malformed secrets'],
      [
        'an invalid plugin name',
        documentWith({ secrets: { '../x': { KEY: sealed(1) } } }),
        'malformed entry (invalid plugin name)',
      ],
      [
        'an invalid key',
        documentWith({ secrets: { board: { lower: sealed(1) } } }),
        'malformed entry for plugin board',
      ],
      [
        'a sealed value without its tag',
        documentWith({ secrets: { board: { KEY: { nonce: 'n', ciphertext: 'c' } } } }),
        'malformed entry for plugin board',
      ],
    ])('refuses %s', (_what, text, reason) => {
      expect(reasonFor(text)).toBe(reason);
    });

    it('refuses a store sealed with another key, naming both key ids', () => {
      expect(reasonFor(documentWith({ keyId: 'fedcba9876543210' }))).toBe(
        "sealed with another SECRETS_KEY (key id fedcba9876543210; the configured key's id is " +
          `${KEY_ID})`,
      );
    });

    it('does not echo a key id field that is not a key id', () => {
      const reason = reasonFor(documentWith({ keyId: 'c2VjcmV0LWtleS1tYXRlcmlhbA==' }));
      expect(reason).toContain('key id invalid;');
      expect(reason).not.toContain('c2VjcmV0');
    });
  });

  describe('associatedData', () => {
    it('binds a value to its plugin and key, unambiguously', () => {
      expect(associatedData('board', 'KEY').toString('utf8')).toBe('portico-secret/v1\0board\0KEY');
      expect(associatedData('a', 'B_C').equals(associatedData('a_B', 'C'))).toBe(false);
    });
  });
});
