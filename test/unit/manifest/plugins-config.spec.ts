import 'reflect-metadata';

import { createHash } from 'node:crypto';

import { configGeneration, parsePluginsConfig } from '../../../src/plugins/manifest/plugins-config';

const parse = (text: string): ReturnType<typeof parsePluginsConfig> =>
  parsePluginsConfig(Buffer.from(text));

function config(text: string): NonNullable<Extract<ReturnType<typeof parse>, { config: unknown }>> {
  const result = parse(text);
  if ('error' in result) throw new Error(`expected a valid config, got: ${result.error}`);
  return result;
}

function error(text: string): string {
  const result = parse(text);
  if (!('error' in result)) throw new Error('expected an invalid config');
  return result.error;
}

describe('parsePluginsConfig', () => {
  it('reads enabled, roles and restart of each listed plugin; unlisted fields take defaults', () => {
    const { config: parsed } = config(`
plugins:
  echo:
    enabled: false
    roles: [ops, admin, ops]
    restart: { enabled: true, maxFailedStarts: 3, initialBackoffMs: 200 }
  terminal: {}
  other:
`);
    expect(parsed.plugins.get('echo')).toEqual({
      enabled: false,
      roles: ['admin', 'ops'],
      restart: { enabled: true, maxFailedStarts: 3, initialBackoffMs: 200 },
    });
    expect(parsed.plugins.get('terminal')).toEqual({ enabled: true });
    expect(parsed.plugins.get('other')).toEqual({ enabled: true });
    expect([...parsed.plugins.keys()]).toEqual(['echo', 'terminal', 'other']);
  });

  it('accepts JSON, and `plugins: {}` for no plugin listed', () => {
    expect(config('{"plugins": {"echo": {"enabled": false}}}').config.plugins.get('echo')).toEqual({
      enabled: false,
    });
    expect(config('plugins: {}\n').config.plugins.size).toBe(0);
    expect(config('# managed by GitOps\nplugins: {}\n').config.plugins.size).toBe(0);
  });

  it.each([
    ['an empty file', ''],
    ['a file of comments only', '# managed by GitOps\n'],
    ['a file cut before its first entry', 'plugins:\n'],
    ['plugins: null', 'plugins: null\n'],
    ['no plugins key', '{}\n'],
  ])('%s → refused: it must not read as "enable everything for everyone"', (_case, text) => {
    expect(error(text)).toMatch(/empty|required|plugins must be a mapping/);
  });

  it('a plugin called __proto__ is an ordinary entry, not a prototype', () => {
    const { config: parsed } = config('plugins:\n  __proto__: { enabled: false }\n');
    expect(parsed.plugins.get('__proto__')).toEqual({ enabled: false });
    expect(Object.prototype).not.toHaveProperty('enabled');
  });

  it.each([
    [
      'a typo in a field → named with its path',
      'plugins:\n  echo:\n    enable: false\n',
      'plugins.echo.enable: unknown field',
    ],
    [
      'a typo nested in restart',
      'plugins:\n  echo:\n    restart: { maxFailedStart: 2 }\n',
      'plugins.echo.restart.maxFailedStart: unknown field',
    ],
    ['an unknown top-level key', 'plugin:\n  echo: {}\n', 'unknown top-level key "plugin"'],
    [
      'yes is a string in YAML 1.2, not a boolean',
      'plugins:\n  echo: { enabled: yes }\n',
      'enabled must be a boolean',
    ],
    ['roles that are not a list', 'plugins:\n  echo: { roles: admin }\n', 'roles must be an array'],
    ['a role with a space', "plugins:\n  echo: { roles: ['a b'] }\n", 'each role must be'],
    [
      'a restart value out of range',
      'plugins:\n  echo: { restart: { initialBackoffMs: -1 } }\n',
      'initialBackoffMs',
    ],
    [
      'restart that is not a mapping',
      'plugins:\n  echo: { restart: true }\n',
      'restart must be a mapping',
    ],
    ['a plugin name with a slash', 'plugins:\n  "../x": {}\n', 'not a plugin name'],
    ['a plugin entry that is a list', 'plugins:\n  echo: [1]\n', 'plugins.echo must be a mapping'],
    ['plugins that is a list', 'plugins: [echo]\n', 'plugins must be a mapping'],
    ['a top level that is a list', '- echo\n', 'top level must be a mapping'],
    ['a duplicate key', 'plugins:\n  echo: {}\n  echo: {}\n', 'invalid YAML'],
    ['broken YAML', 'plugins:\n  echo: {enabled: false\n', 'invalid YAML'],
    [
      'too many aliases (billion laughs)',
      [
        'a: &a [x, x, x, x, x, x, x, x, x, x]',
        ...Array.from(
          { length: 12 },
          (_, i) =>
            `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
              .fill(`*${String.fromCharCode(97 + i)}`)
              .join(', ')}]`,
        ),
      ].join('\n'),
      'invalid YAML',
    ],
  ])('%s → refused', (_case, text, reason) => {
    expect(error(text)).toContain(reason);
  });

  it('says where broken YAML is broken', () => {
    expect(error('plugins:\n  echo: {enabled: false\n')).toMatch(
      /^invalid YAML at line \d+, column \d+ \(/,
    );
  });

  it.each([
    [
      'flow collections nested 33 deep',
      `plugins: {echo: {roles: ${'['.repeat(33)}${']'.repeat(33)}}}`,
    ],
    ['a 60 KB [[[…]]] bomb', `plugins: ${'['.repeat(30000)}${']'.repeat(30000)}`],
  ])('%s → refused before parsing', (_case, text) => {
    expect(error(text)).toBe('invalid YAML (nested deeper than 32 levels)');
  });

  it.each([
    ['a mapping used as a key', 'plugins:\n  ? {a: 1}\n  : {}\n'],
    ['a tag building bytes instead of a mapping', 'plugins:\n  echo: !!binary aGVsbG8=\n'],
    ['an unknown tag', 'plugins:\n  echo: !custom {}\n'],
  ])('%s → refused, with nothing written to stderr', (_case, text) => {
    const stderr = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const log = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(error(text)).not.toContain('undefined');
      expect(stderr).not.toHaveBeenCalled();
      expect(log).not.toHaveBeenCalled();
    } finally {
      stderr.mockRestore();
      log.mockRestore();
    }
  });

  it('lists at most five unknown top-level keys, each cut to 64 characters', () => {
    const text = Array.from({ length: 9 }, (_, i) => `${'k'.repeat(100)}${i}: 1`).join('\n');
    const reason = error(text);
    expect(reason).toMatch(/and 4 more \(only "plugins"\)$/);
    expect(reason).not.toContain('k'.repeat(65));
  });

  it('bytes that are not UTF-8 → refused', () => {
    const result = parsePluginsConfig(Buffer.from([0x70, 0x3a, 0xff, 0xfe]));
    expect(result).toMatchObject({ error: 'not valid UTF-8' });
  });

  it('lists at most five reasons, then how many more', () => {
    const text = `plugins:\n${Array.from({ length: 8 }, (_, i) => `  p${i}: { enable: 1 }`).join('\n')}\n`;
    expect(error(text)).toMatch(/; and 3 more$/);
  });

  it('the generation is the first 12 hex digits of the SHA-256 of the bytes, valid or not', () => {
    const text = 'plugins:\n  echo: { enabled: false }\n';
    const expected = Number.parseInt(
      createHash('sha256').update(text).digest('hex').slice(0, 12),
      16,
    );
    expect(config(text).config.generation).toBe(expected);
    expect(configGeneration(Buffer.from(text))).toBe(expected);
    expect(parse('plugins: [')).toMatchObject({
      generation: configGeneration(Buffer.from('plugins: [')),
    });
    expect(Number.isSafeInteger(expected)).toBe(true);
  });
});
