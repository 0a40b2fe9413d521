import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  hasHiddenSegment,
  isInsideDir,
  isRelativePluginPath,
  realFileInside,
} from '../../../src/plugins/manifest/plugin-path';

describe('isRelativePluginPath', () => {
  it.each(['index.js', 'dist/index.js', 'a/./b.js', './a.js', 'a..b.js', '..a', 'a/..b/c'])(
    'accepts %s',
    (path) => expect(isRelativePluginPath(path)).toBe(true),
  );

  it.each([
    '',
    '..',
    '../a.js',
    'a/../../b',
    'a/..',
    '/etc/passwd',
    '//server/share',
    'a\\b',
    '..\\a',
    'a\0b',
    'C:/a',
    'c:a',
    'x'.repeat(1025),
  ])('rejects %j', (path) => expect(isRelativePluginPath(path)).toBe(false));
});

describe('hasHiddenSegment', () => {
  it.each(['.env', '.git/config', 'a/.hidden/b.js', 'a/.x'])('flags %s', (path) =>
    expect(hasHiddenSegment(path)).toBe(true),
  );
  it.each(['a.js', './a.js', 'a/./b', 'dist/x.min.js'])('passes %s', (path) =>
    expect(hasHiddenSegment(path)).toBe(false),
  );
});

describe('isInsideDir', () => {
  it('does not take a sibling with the same prefix for a child', () => {
    expect(isInsideDir('/p/echo', '/p/echo-evil/x')).toBe(false);
    expect(isInsideDir('/p/echo', '/p/echo/x')).toBe(true);
    expect(isInsideDir('/p/echo', '/p/echo')).toBe(true);
    expect(isInsideDir('/', '/etc')).toBe(true);
  });
});

describe('realFileInside', () => {
  let root: string;
  let plugin: string;

  beforeAll(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-path-')));
    plugin = join(root, 'plugin');
    mkdirSync(join(plugin, 'sub'), { recursive: true });
    mkdirSync(join(root, 'plugin-evil'));
    writeFileSync(join(plugin, 'index.js'), 'ok');
    writeFileSync(join(plugin, 'sub', 'deep.js'), 'deep');
    writeFileSync(join(root, 'secret.txt'), 'secret');
    writeFileSync(join(root, 'plugin-evil', 'x.js'), 'evil');
    symlinkSync(join(root, 'secret.txt'), join(plugin, 'out.txt'));
    symlinkSync(join(root, 'plugin-evil'), join(plugin, 'evil-dir'));
    symlinkSync('../../secret.txt', join(plugin, 'sub', 'relative-out.txt'));
    symlinkSync('sub/deep.js', join(plugin, 'in.js'));
    symlinkSync(join(plugin, 'nowhere'), join(plugin, 'dangling.js'));
    symlinkSync('loop-b', join(plugin, 'loop-a'));
    symlinkSync('loop-a', join(plugin, 'loop-b'));
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('finds a file at the top and in a sub-folder', async () => {
    await expect(realFileInside(plugin, 'index.js')).resolves.toBe(join(plugin, 'index.js'));
    await expect(realFileInside(plugin, 'sub/deep.js')).resolves.toBe(join(plugin, 'sub/deep.js'));
    await expect(realFileInside(plugin, './sub/./deep.js')).resolves.toBe(
      join(plugin, 'sub/deep.js'),
    );
  });

  it('follows a symlink that stays inside, to its real path', async () => {
    await expect(realFileInside(plugin, 'in.js')).resolves.toBe(join(plugin, 'sub/deep.js'));
  });

  it('refuses a symlink that leads outside', async () => {
    await expect(realFileInside(plugin, 'out.txt')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, 'sub/relative-out.txt')).resolves.toBeUndefined();
  });

  it('refuses a folder reached through a symlink to a sibling with the same prefix', async () => {
    await expect(realFileInside(plugin, 'evil-dir/x.js')).resolves.toBeUndefined();
  });

  it('refuses folders, missing files, dangling and looping links', async () => {
    await expect(realFileInside(plugin, 'sub')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, '.')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, 'missing.js')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, 'dangling.js')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, 'loop-a')).resolves.toBeUndefined();
  });

  it('refuses paths that are not relative to the folder', async () => {
    await expect(realFileInside(plugin, '../secret.txt')).resolves.toBeUndefined();
    await expect(realFileInside(plugin, join(root, 'secret.txt'))).resolves.toBeUndefined();
    await expect(realFileInside(plugin, 'sub/../../secret.txt')).resolves.toBeUndefined();
  });
});
