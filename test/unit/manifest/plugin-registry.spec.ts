import 'reflect-metadata';

import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { PorticoConfig } from '../../../src/config/portico-config';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import { registryFor } from '../../helpers/registry';
import { PluginException, PluginExceptionCode } from '../../../src/plugins/shared/plugin.exception';

describe('PluginRegistry', () => {
  let root: string;
  let pluginsDir: string;
  let dataDir: string;
  let warn: jest.SpyInstance;
  let error: jest.SpyInstance;

  const config = (): PorticoConfig =>
    Object.assign(new PorticoConfig(), { PLUGINS_DIR: pluginsDir, DATA_DIR: dataDir });
  const newRegistry = (): PluginRegistry => registryFor(config());

  /** Writes a plugin folder; `manifest` is JSON-encoded unless it is a string. */
  function plugin(
    folder: string,
    manifest: unknown,
    files: Record<string, string> = { 'index.js': 'export {}' },
  ): string {
    const dir = join(pluginsDir, folder);
    mkdirSync(dir, { recursive: true });
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), content);
    }
    if (manifest !== undefined)
      writeFileSync(
        join(dir, 'manifest.json'),
        typeof manifest === 'string' ? manifest : JSON.stringify(manifest),
      );
    return dir;
  }
  const valid = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    name,
    displayName: name.toUpperCase(),
    entry: 'index.js',
    ...extra,
  });

  function expectPluginException(fn: () => unknown, code: PluginExceptionCode): void {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(PluginException);
      expect((err as PluginException).code).toBe(code);
      return;
    }
    throw new Error('expected a PluginException');
  }

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-registry-')));
    pluginsDir = join(root, 'plugins');
    dataDir = join(root, 'data');
    mkdirSync(pluginsDir);
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  describe('scan', () => {
    it('lists every folder with a valid manifest, sorted by name, enabled by default', async () => {
      plugin('zeta-folder', valid('alpha'));
      plugin('beta', valid('beta', { server: 'server.js', extra: true }), {
        'index.js': '',
        'server.js': '',
      });
      const registry = newRegistry();

      await expect(registry.scan()).resolves.toEqual({
        added: ['alpha', 'beta'],
        removed: [],
        changed: [],
      });

      expect(registry.list().map((p) => p.name)).toEqual(['alpha', 'beta']);
      expect(registry.get('alpha')).toMatchObject({
        name: 'alpha',
        folder: 'zeta-folder',
        dir: join(pluginsDir, 'zeta-folder'),
        enabled: true,
        manifest: { name: 'alpha', displayName: 'ALPHA', entry: 'index.js' },
      });
      expect(registry.get('alpha')?.invalidReason).toBeUndefined();
      expect(registry.require('beta').manifest?.server).toBe('server.js');
      expect(registry.require('beta').manifest).not.toHaveProperty('extra');
      expect(warn).not.toHaveBeenCalled();
    });

    it('ignores folders without a manifest.json and plain files', async () => {
      plugin('no-manifest', undefined);
      writeFileSync(join(pluginsDir, 'README.md'), '# plugins');
      plugin('echo', valid('echo'));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.list().map((p) => p.name)).toEqual(['echo']);
    });

    it('follows a symlinked plugin folder and records its real path', async () => {
      const elsewhere = join(root, 'dev', 'linked');
      mkdirSync(elsewhere, { recursive: true });
      writeFileSync(join(elsewhere, 'index.js'), '');
      writeFileSync(join(elsewhere, 'manifest.json'), JSON.stringify(valid('linked')));
      symlinkSync(elsewhere, join(pluginsDir, 'linked'));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('linked')).toMatchObject({ folder: 'linked', dir: elsewhere });
    });

    it('treats a missing PLUGINS_DIR as empty and says so once per disappearance', async () => {
      rmSync(pluginsDir, { recursive: true });
      const registry = newRegistry();
      await expect(registry.scan()).resolves.toEqual({ added: [], removed: [], changed: [] });
      await registry.scan();
      expect(registry.list()).toEqual([]);
      const missing = warn.mock.calls.filter(
        ([entry]) => (entry as { event?: string }).event === 'plugins_dir_missing',
      );
      expect(missing).toHaveLength(1);

      mkdirSync(pluginsDir);
      plugin('echo', valid('echo'));
      await expect(registry.scan()).resolves.toMatchObject({ added: ['echo'] });
      rmSync(pluginsDir, { recursive: true });
      await expect(registry.scan()).resolves.toMatchObject({ removed: ['echo'] });
      expect(
        warn.mock.calls.filter(
          ([entry]) => (entry as { event?: string }).event === 'plugins_dir_missing',
        ),
      ).toHaveLength(2);
    });
  });

  describe('invalid plugins', () => {
    it('lists a folder with broken JSON under its folder name, with the reason, and logs it', async () => {
      plugin('broken', '{"name": ');
      plugin('echo', valid('echo'));
      const registry = newRegistry();
      await registry.scan();

      const broken = registry.require('broken');
      expect(broken.manifest).toBeUndefined();
      expect(broken.invalidReason).toMatch(/^manifest\.json: invalid JSON/);
      expect(broken.enabled).toBe(true);
      expect(registry.require('echo').invalidReason).toBeUndefined();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({
          plugin: 'broken',
          event: 'manifest_invalid',
          reason: broken.invalidReason,
        }),
      );
    });

    it('uses the manifest name when only something else is wrong', async () => {
      plugin('folder-a', valid('good-name', { entry: '../outside.js' }));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.get('folder-a')).toBeUndefined();
      expect(registry.require('good-name').invalidReason).toBe(
        'manifest.json: entry must be a relative path inside the plugin folder',
      );
    });

    it.each<[string, Record<string, unknown>, Record<string, string>, string]>([
      [
        'a missing entry file',
        valid('p', { entry: 'dist/index.js' }),
        {},
        'manifest.json: entry "dist/index.js" is not a file inside the plugin folder',
      ],
      [
        'an entry that is a folder',
        valid('p', { entry: 'dist' }),
        { 'dist/index.js': '' },
        'manifest.json: entry "dist" is not a file inside the plugin folder',
      ],
      [
        'a missing server file',
        valid('p', { server: 'server.js' }),
        { 'index.js': '' },
        'manifest.json: server "server.js" is not a file inside the plugin folder',
      ],
      [
        'an entry in a hidden folder',
        valid('p', { entry: '.build/index.js' }),
        { '.build/index.js': '' },
        'manifest.json: entry must not be a hidden file or folder',
      ],
    ])('rejects %s', async (_what, manifest, files, reason) => {
      plugin('p', manifest, files);
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('p').invalidReason).toBe(reason);
    });

    it('rejects an entry that is a symlink leading outside the folder', async () => {
      writeFileSync(join(root, 'outside.js'), 'stolen');
      const dir = plugin('p', valid('p'), {});
      symlinkSync(join(root, 'outside.js'), join(dir, 'index.js'));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('p').invalidReason).toContain(
        'entry "index.js" is not a file inside',
      );
    });

    it('rejects a manifest.json that is a folder or too large', async () => {
      mkdirSync(join(pluginsDir, 'dir-manifest', 'manifest.json'), { recursive: true });
      plugin(
        'huge',
        `{"name":"huge","displayName":"H","entry":"index.js","x":"${'a'.repeat(1024 * 1024)}"}`,
      );
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('dir-manifest').invalidReason).toBe(
        'manifest.json: not a regular file inside the plugin folder',
      );
      expect(registry.require('huge').invalidReason).toMatch(/^manifest\.json: larger than/);
    });
  });

  describe('duplicate names', () => {
    it('keeps the first folder in sorted order and lists the other as invalid', async () => {
      plugin('b-second', valid('dup'));
      plugin('a-first', valid('dup'));
      const registry = newRegistry();
      await registry.scan();

      expect(registry.require('dup')).toMatchObject({ folder: 'a-first' });
      expect(registry.require('dup').invalidReason).toBeUndefined();
      const loser = registry.require('b-second');
      expect(loser.manifest).toBeUndefined();
      expect(loser.invalidReason).toMatch(/^duplicate plugin name "dup"/);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ plugin: 'b-second', event: 'manifest_invalid' }),
      );
    });

    it('does not let a broken manifest take the name of a valid one', async () => {
      plugin('a-broken', valid('echo', { entry: 'missing.js' }));
      plugin('b-working', valid('echo'));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('echo')).toMatchObject({ folder: 'b-working' });
      expect(registry.require('echo').invalidReason).toBeUndefined();
      expect(registry.require('a-broken').invalidReason).toContain('entry "missing.js"');
    });

    it('gives an invalid folder a unique name when its folder name is taken', async () => {
      plugin('echo', '{');
      plugin('other', valid('echo'));
      const registry = newRegistry();
      await registry.scan();
      expect(registry.list().map((p) => [p.name, p.folder])).toEqual([
        ['echo', 'other'],
        ['echo-2', 'echo'],
      ]);
    });
  });

  describe('require', () => {
    it('throws UNKNOWN_PLUGIN for an unknown name', async () => {
      const registry = newRegistry();
      await registry.scan();
      expectPluginException(() => registry.require('nope'), PluginExceptionCode.UNKNOWN_PLUGIN);
    });
  });

  describe('setEnabled', () => {
    it('persists the flag atomically, and a new registry reads it back', async () => {
      plugin('echo', valid('echo'));
      plugin('other', valid('other'));
      const first = newRegistry();
      await first.scan();

      const updated = await first.setEnabled('echo', false);
      expect(updated).toMatchObject({ name: 'echo', enabled: false });
      expect(first.require('echo').enabled).toBe(false);

      const file = join(dataDir, 'plugins-state.json');
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
        plugins: { echo: { enabled: false } },
      });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readdirSync(dataDir)).toEqual(['plugins-state.json']);

      const second = newRegistry();
      await second.scan();
      expect(second.require('echo').enabled).toBe(false);
      expect(second.require('other').enabled).toBe(true);
    });

    it('keeps the flag across rescans and across removal and return of the folder', async () => {
      const dir = plugin('echo', valid('echo'));
      const registry = newRegistry();
      await registry.scan();
      await registry.setEnabled('echo', false);
      await registry.scan();
      expect(registry.require('echo').enabled).toBe(false);

      rmSync(dir, { recursive: true });
      await registry.scan();
      plugin('echo', valid('echo'));
      await registry.scan();
      expect(registry.require('echo').enabled).toBe(false);

      await registry.setEnabled('echo', true);
      expect((await newRegistry().scan()).added).toEqual(['echo']);
    });

    it('serialises concurrent writes so that none is lost', async () => {
      for (const name of ['a', 'b', 'c', 'd']) plugin(name, valid(name));
      const registry = newRegistry();
      await registry.scan();
      await Promise.all(['a', 'b', 'c', 'd'].map((n) => registry.setEnabled(n, false)));
      const reloaded = newRegistry();
      await reloaded.scan();
      expect(reloaded.list().map((p) => p.enabled)).toEqual([false, false, false, false]);
    });

    it('throws UNKNOWN_PLUGIN for an unknown name and writes nothing', async () => {
      const registry = newRegistry();
      await registry.scan();
      await expect(registry.setEnabled('nope', false)).rejects.toMatchObject({
        code: PluginExceptionCode.UNKNOWN_PLUGIN,
      });
      expect(() => statSync(join(dataDir, 'plugins-state.json'))).toThrow();
    });

    it('falls back to the defaults when the state file is corrupt', async () => {
      plugin('echo', valid('echo'));
      mkdirSync(dataDir);
      writeFileSync(join(dataDir, 'plugins-state.json'), 'not json');
      const registry = newRegistry();
      await registry.scan();
      expect(registry.require('echo').enabled).toBe(true);
      expect(error).toHaveBeenCalledWith(
        expect.objectContaining({ event: 'plugin_state_unreadable' }),
      );
    });
  });

  describe('rescan', () => {
    it('reports added, removed and changed plugins', async () => {
      plugin('keep', valid('keep'));
      const gone = plugin('gone', valid('gone'));
      const change = plugin('change', valid('change'));
      const registry = newRegistry();
      await registry.scan();

      rmSync(gone, { recursive: true });
      plugin('new', valid('new'));
      writeFileSync(
        join(change, 'manifest.json'),
        JSON.stringify(valid('change', { version: '2' })),
      );

      await expect(registry.scan()).resolves.toEqual({
        added: ['new'],
        removed: ['gone'],
        changed: ['change'],
      });
      expect(registry.list().map((p) => p.name)).toEqual(['change', 'keep', 'new']);
      await expect(registry.scan()).resolves.toEqual({ added: [], removed: [], changed: [] });
    });

    it('reports a plugin that became invalid as changed', async () => {
      const dir = plugin('echo', valid('echo'));
      const registry = newRegistry();
      await registry.scan();
      rmSync(join(dir, 'index.js'));
      await expect(registry.scan()).resolves.toEqual({ added: [], removed: [], changed: ['echo'] });
      expect(registry.require('echo').invalidReason).toBeDefined();
    });
  });

  describe('resolveFile', () => {
    let registry: PluginRegistry;
    let dir: string;

    beforeEach(async () => {
      writeFileSync(join(root, 'secret.txt'), 'secret');
      dir = plugin('echo', valid('echo'), {
        'index.js': '',
        'sub/deep.css': '',
        '.env': 'TOKEN=x',
      });
      symlinkSync(join(root, 'secret.txt'), join(dir, 'out.txt'));
      symlinkSync('sub/deep.css', join(dir, 'in.css'));
      plugin('broken', '{');
      registry = newRegistry();
      await registry.scan();
    });

    it('returns the real path of a file inside the folder', async () => {
      await expect(registry.resolveFile('echo', 'index.js')).resolves.toBe(join(dir, 'index.js'));
      await expect(registry.resolveFile('echo', 'sub/deep.css')).resolves.toBe(
        join(dir, 'sub/deep.css'),
      );
      await expect(registry.resolveFile('echo', 'in.css')).resolves.toBe(join(dir, 'sub/deep.css'));
    });

    it.each(['../secret.txt', '/etc/passwd', 'out.txt', 'sub', 'missing.js', '.env', 'a\\b'])(
      'refuses %j with FILE_NOT_FOUND',
      async (path) => {
        await expect(registry.resolveFile('echo', path)).rejects.toMatchObject({
          code: PluginExceptionCode.FILE_NOT_FOUND,
        });
      },
    );

    it('serves nothing from an invalid plugin and nothing from an unknown one', async () => {
      writeFileSync(join(pluginsDir, 'broken', 'index.js'), '');
      await expect(registry.resolveFile('broken', 'index.js')).rejects.toMatchObject({
        code: PluginExceptionCode.FILE_NOT_FOUND,
      });
      await expect(registry.resolveFile('nope', 'index.js')).rejects.toMatchObject({
        code: PluginExceptionCode.UNKNOWN_PLUGIN,
      });
    });
  });
});
