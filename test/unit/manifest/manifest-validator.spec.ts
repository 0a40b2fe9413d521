import 'reflect-metadata';

import { ManifestDto } from '../../../src/plugins/manifest/manifest.dto';
import {
  ManifestParseResult,
  parseManifest,
} from '../../../src/plugins/manifest/manifest-validator';

const base = { name: 'echo', displayName: 'Echo', entry: 'index.js' };

function parse(value: unknown): ManifestParseResult {
  return parseManifest(typeof value === 'string' ? value : JSON.stringify(value));
}

function manifestOf(value: unknown): ManifestDto {
  const result = parse(value);
  if ('error' in result) throw new Error(`expected a valid manifest, got: ${result.error}`);
  return result.manifest;
}

function errorOf(value: unknown): string {
  const result = parse(value);
  if (!('error' in result))
    throw new Error(`expected an invalid manifest: ${JSON.stringify(value)}`);
  return result.error;
}

describe('parseManifest', () => {
  describe('a valid manifest', () => {
    it('keeps the declared fields and drops unknown ones, also in nested objects', () => {
      const manifest = manifestOf({
        ...base,
        server: 'server/index.js',
        version: '1.2.3',
        description: 'Echoes',
        author: 'Someone',
        icon: 'icon.svg',
        type: 'module',
        slot: 'tab',
        permissions: ['network'],
        readyTimeoutMs: 5000,
        maxMessageBytes: 1024,
        secrets: [{ key: 'GITHUB_TOKEN', description: 'token', required: true, extra: 1 }],
        restart: {
          enabled: true,
          maxFailedStarts: 3,
          initialBackoffMs: 100,
          maxBackoffMs: 1000,
          healthyAfterMs: 5000,
          extra: 2,
        },
        homepage: 'https://example.com',
        contributes: { commands: [] },
      });
      expect(manifest).toBeInstanceOf(ManifestDto);
      expect(JSON.parse(JSON.stringify(manifest))).toEqual({
        ...base,
        server: 'server/index.js',
        version: '1.2.3',
        description: 'Echoes',
        author: 'Someone',
        icon: 'icon.svg',
        type: 'module',
        slot: 'tab',
        permissions: ['network'],
        readyTimeoutMs: 5000,
        maxMessageBytes: 1024,
        secrets: [{ key: 'GITHUB_TOKEN', description: 'token', required: true }],
        restart: {
          enabled: true,
          maxFailedStarts: 3,
          initialBackoffMs: 100,
          maxBackoffMs: 1000,
          healthyAfterMs: 5000,
        },
      });
      expect(Object.keys(manifest)).not.toContain('homepage');
    });

    it('accepts the minimal manifest and sets no optional field', () => {
      const manifest = manifestOf(base);
      expect(Object.keys(manifest).sort()).toEqual(['displayName', 'entry', 'name']);
    });

    it('reads "./index.js" as "index.js"', () => {
      expect(manifestOf({ ...base, entry: './index.js', server: './srv/main.js' })).toMatchObject({
        entry: 'index.js',
        server: 'srv/main.js',
      });
    });

    it('treats null optional fields as absent', () => {
      const manifest = manifestOf({ ...base, server: null, secrets: null });
      expect(manifest.server).toBeUndefined();
      expect('server' in manifest).toBe(false);
    });

    it('accepts a byte-order mark', () => {
      expect(manifestOf('\uFEFF' + JSON.stringify(base)).name).toBe('echo');
    });

    it('does not let __proto__ reach the object', () => {
      const manifest = manifestOf(
        '{"name":"a","displayName":"A","entry":"a.js","__proto__":{"polluted":1}}',
      );
      expect((manifest as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.getPrototypeOf(manifest)).toBe(ManifestDto.prototype);
    });

    it.each(['a', 'A-b_9', 'x'.repeat(128)])('accepts the name %s', (name) => {
      expect(manifestOf({ ...base, name }).name).toBe(name);
    });

    it.each(['GITHUB_TOKEN', 'A', 'API_KEY_2', 'X' + 'Y'.repeat(63)])(
      'accepts the secret key %s',
      (key) => {
        expect(manifestOf({ ...base, secrets: [{ key }] }).secrets?.[0].key).toBe(key);
      },
    );

    it('accepts the limits themselves', () => {
      expect(
        manifestOf({
          ...base,
          readyTimeoutMs: 100,
          maxMessageBytes: 1024 ** 3,
          restart: { maxFailedStarts: 100, initialBackoffMs: 10, maxBackoffMs: 3600000 },
        }),
      ).toMatchObject({ readyTimeoutMs: 100 });
      expect(
        manifestOf({ ...base, readyTimeoutMs: 300000, maxMessageBytes: 1 }).maxMessageBytes,
      ).toBe(1);
    });
  });

  describe('an invalid manifest', () => {
    it.each<[string, string, RegExp]>([
      ['empty text', '', /^manifest\.json: invalid JSON \(/],
      ['broken JSON', '{"name": "a",', /^manifest\.json: invalid JSON \(/],
      ['an array', '[]', /^manifest\.json: must be a JSON object$/],
      ['null', 'null', /^manifest\.json: must be a JSON object$/],
      ['a string', '"x"', /^manifest\.json: must be a JSON object$/],
      ['a number', '42', /^manifest\.json: must be a JSON object$/],
    ])('rejects %s', (_what, text, reason) => {
      expect(errorOf(text)).toMatch(reason);
    });

    it.each<[string, Record<string, unknown>, string]>([
      ['no name', { displayName: 'E', entry: 'a.js' }, 'name is required'],
      ['no displayName', { name: 'e', entry: 'a.js' }, 'displayName is required'],
      ['no entry', { name: 'e', displayName: 'E' }, 'entry is required'],
      ['a name with a space', { ...base, name: 'a b' }, 'name must match'],
      ['a name with a slash', { ...base, name: 'a/b' }, 'name must match'],
      ['a name with a dot', { ...base, name: '..' }, 'name must match'],
      ['an empty name', { ...base, name: '' }, 'name must match'],
      ['a name of 129 characters', { ...base, name: 'x'.repeat(129) }, 'at most 128 characters'],
      ['a numeric name', { ...base, name: 5 }, 'name must match'],
      [
        'an empty displayName',
        { ...base, displayName: '  ' },
        'displayName must be a non-empty string',
      ],
      [
        'entry with ..',
        { ...base, entry: '../outside.js' },
        'entry must be a relative path inside the plugin folder',
      ],
      [
        'entry with a .. segment inside',
        { ...base, entry: 'a/../../b.js' },
        'entry must be a relative path',
      ],
      ['an absolute entry', { ...base, entry: '/etc/passwd' }, 'entry must be a relative path'],
      ['entry with a backslash', { ...base, entry: 'a\\b.js' }, 'entry must be a relative path'],
      ['entry with ..\\', { ...base, entry: '..\\b.js' }, 'entry must be a relative path'],
      ['entry with NUL', { ...base, entry: 'a\u0000.js' }, 'entry must be a relative path'],
      ['a Windows drive entry', { ...base, entry: 'C:/x.js' }, 'entry must be a relative path'],
      ['an empty entry', { ...base, entry: '' }, 'entry must be a relative path'],
      ['a numeric entry', { ...base, entry: 3 }, 'entry must be a relative path'],
      ['server with ..', { ...base, server: '../server.js' }, 'server must be a relative path'],
      [
        'an absolute server',
        { ...base, server: '/usr/bin/node' },
        'server must be a relative path',
      ],
      [
        'readyTimeoutMs as a string',
        { ...base, readyTimeoutMs: '5000' },
        'readyTimeoutMs must be an integer from 100 to 300000',
      ],
      [
        'readyTimeoutMs too small',
        { ...base, readyTimeoutMs: 99 },
        'readyTimeoutMs must be an integer from 100',
      ],
      [
        'readyTimeoutMs too large',
        { ...base, readyTimeoutMs: 300001 },
        'readyTimeoutMs must be an integer',
      ],
      [
        'readyTimeoutMs fractional',
        { ...base, readyTimeoutMs: 1000.5 },
        'readyTimeoutMs must be an integer',
      ],
      [
        'maxMessageBytes 0',
        { ...base, maxMessageBytes: 0 },
        'maxMessageBytes must be an integer from 1 to 1073741824',
      ],
      [
        'maxMessageBytes over 1 GiB',
        { ...base, maxMessageBytes: 1024 ** 3 + 1 },
        'maxMessageBytes must be an integer',
      ],
      ['secrets not an array', { ...base, secrets: { key: 'A' } }, 'secrets must be an array'],
      [
        'a secret that is a string',
        { ...base, secrets: ['TOKEN'] },
        'secrets[0] must be an object',
      ],
      [
        'a secret without key',
        { ...base, secrets: [{ description: 'x' }] },
        'secrets[0].key is required',
      ],
      [
        'a lower-case secret key',
        { ...base, secrets: [{ key: 'token' }] },
        'secrets[0].key must match ^[A-Z][A-Z0-9_]{0,63}$',
      ],
      [
        'a secret key starting with a digit',
        { ...base, secrets: [{ key: '1X' }] },
        'secrets[0].key must match',
      ],
      [
        'a secret key of 65 characters',
        { ...base, secrets: [{ key: 'X'.repeat(65) }] },
        'secrets[0].key must match',
      ],
      [
        'secret key PATH',
        { ...base, secrets: [{ key: 'PATH' }] },
        'secrets[0].key must not be a reserved variable name (PATH)',
      ],
      ['secret key HOME', { ...base, secrets: [{ key: 'HOME' }] }, 'reserved variable name (HOME)'],
      [
        'secret key NODE_OPTIONS',
        { ...base, secrets: [{ key: 'NODE_OPTIONS' }] },
        'reserved variable name (NODE_OPTIONS)',
      ],
      [
        'secret key PLUGIN_NAME',
        { ...base, secrets: [{ key: 'PLUGIN_NAME' }] },
        'reserved variable name',
      ],
      [
        'secret key LD_PRELOAD',
        { ...base, secrets: [{ key: 'LD_PRELOAD' }] },
        'reserved variable name',
      ],
      [
        'secret key PORTICO_X',
        { ...base, secrets: [{ key: 'PORTICO_X' }] },
        'reserved variable name',
      ],
      [
        'duplicate secret keys',
        { ...base, secrets: [{ key: 'A' }, { key: 'B' }, { key: 'A' }] },
        'secrets has a duplicate key A',
      ],
      [
        'a non-boolean required',
        { ...base, secrets: [{ key: 'A', required: 'yes' }] },
        'secrets[0].required must be a boolean',
      ],
      ['restart as an array', { ...base, restart: [] }, 'restart must be an object'],
      ['restart as a number', { ...base, restart: 1 }, 'restart must be an object'],
      [
        'restart.enabled not boolean',
        { ...base, restart: { enabled: 1 } },
        'restart.enabled must be a boolean',
      ],
      [
        'restart.maxFailedStarts 0',
        { ...base, restart: { maxFailedStarts: 0 } },
        'restart.maxFailedStarts must be an integer from 1 to 100',
      ],
      [
        'restart.maxFailedStarts 101',
        { ...base, restart: { maxFailedStarts: 101 } },
        'restart.maxFailedStarts must be an integer',
      ],
      [
        'restart.initialBackoffMs 9',
        { ...base, restart: { initialBackoffMs: 9 } },
        'restart.initialBackoffMs must be an integer from 10 to 3600000',
      ],
      [
        'restart.maxBackoffMs over an hour',
        { ...base, restart: { maxBackoffMs: 3600001 } },
        'restart.maxBackoffMs must be an integer',
      ],
      [
        'restart.healthyAfterMs negative',
        { ...base, restart: { healthyAfterMs: -1 } },
        'restart.healthyAfterMs must be an integer',
      ],
      [
        'maxBackoffMs below initialBackoffMs',
        { ...base, restart: { initialBackoffMs: 1000, maxBackoffMs: 500 } },
        'restart.maxBackoffMs must not be less than initialBackoffMs',
      ],
      [
        'an unknown type',
        { ...base, type: 'vue' },
        'type must be one of the following values: module, react',
      ],
      [
        'an unknown slot',
        { ...base, slot: 'sidebar' },
        'slot must be one of the following values: tab',
      ],
      ['permissions not an array', { ...base, permissions: 'all' }, 'permissions must be an array'],
      [
        'a non-string permission',
        { ...base, permissions: [1] },
        'each value in permissions must be a string',
      ],
      ['a non-string version', { ...base, version: 1 }, 'version must be a string'],
      ['an object author', { ...base, author: { name: 'x' } }, 'author must be a string'],
    ])('rejects %s', (_what, manifest, reason) => {
      const error = errorOf(manifest);
      expect(error.startsWith('manifest.json: ')).toBe(true);
      expect(error).toContain(reason);
      expect(error).not.toMatch(/\n/);
    });

    it('lists every problem on one line', () => {
      expect(errorOf({ name: 'a b', displayName: 'X', entry: '../x', readyTimeoutMs: 1 })).toBe(
        'manifest.json: name must match ^[a-zA-Z0-9_-]+$ and be at most 128 characters; entry must be a relative path inside the plugin folder; readyTimeoutMs must be an integer from 100 to 300000',
      );
    });

    it('summarises beyond five problems', () => {
      const error = errorOf({
        name: '?',
        displayName: '',
        entry: '/',
        server: '/',
        readyTimeoutMs: 1,
        maxMessageBytes: 0,
        type: 'x',
      });
      expect(error).toMatch(/; and 2 more$/);
    });

    it('reports the name when the name itself is valid', () => {
      expect(parse({ ...base, entry: '../x' })).toEqual({
        error: expect.stringContaining('entry must be') as unknown,
        name: 'echo',
      });
      expect(parse({ ...base, name: 'bad name', entry: '../x' })).not.toHaveProperty('name');
      expect(parse('{"name":"ok",')).not.toHaveProperty('name');
    });
  });
});
