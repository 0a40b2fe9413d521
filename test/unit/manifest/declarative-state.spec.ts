import 'reflect-metadata';

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { ConfigException } from '../../../src/config/config.exception';
import { PorticoConfig } from '../../../src/config/portico-config';
import { PorticoMetrics } from '../../../src/metrics/portico-metrics';
import { DeclarativePluginStateStore } from '../../../src/plugins/manifest/declarative-state.store';
import type { PluginStateChange } from '../../../src/plugins/manifest/plugin-descriptor';
import type { PluginStateStore } from '../../../src/plugins/manifest/plugin-state.store';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import * as pluginsConfig from '../../../src/plugins/manifest/plugins-config';
import { policyFor } from '../../../src/plugins/process/supervision-policy';
import { PluginException, PluginExceptionCode } from '../../../src/plugins/shared/plugin.exception';
import { writeSecretVolume } from '../../helpers/kubernetes-volume';

describe('PLUGINS_CONFIG (DeclarativePluginStateStore + PluginRegistry)', () => {
  let root: string;
  let pluginsDir: string;
  let configDir: string;
  let file: string;
  let metrics: PorticoMetrics;
  let errorLog: jest.SpyInstance;
  let warnLog: jest.SpyInstance;

  const writeConfig = (text: string): void =>
    writeSecretVolume(configDir, { 'plugins.yaml': text });
  const metric = async (name: string): Promise<number> =>
    (await metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value ?? NaN;
  const plugin = (name: string, manifest: Record<string, unknown> = {}): void => {
    mkdirSync(join(pluginsDir, name));
    writeFileSync(join(pluginsDir, name, 'index.js'), 'export {}');
    writeFileSync(
      join(pluginsDir, name, 'manifest.json'),
      JSON.stringify({ name, displayName: name, entry: 'index.js', ...manifest }),
    );
  };

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-declarative-')));
    pluginsDir = join(root, 'plugins');
    configDir = join(root, 'config');
    file = join(configDir, 'plugins.yaml');
    mkdirSync(pluginsDir);
    metrics = new PorticoMetrics();
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
    errorLog = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    warnLog = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  describe('the store', () => {
    it('a missing or invalid file at startup → ConfigException naming PLUGINS_CONFIG', async () => {
      await expect(DeclarativePluginStateStore.open(file, 1000, metrics)).rejects.toThrow(
        ConfigException,
      );
      await expect(DeclarativePluginStateStore.open(file, 1000, metrics)).rejects.toThrow(
        `PLUGINS_CONFIG: ${file}: cannot be read (ENOENT)`,
      );
      writeConfig('plugins: [');
      await expect(DeclarativePluginStateStore.open(file, 1000, metrics)).rejects.toThrow(
        /PLUGINS_CONFIG: .*invalid YAML/,
      );
    });

    it('parses a file again only when its bytes changed', async () => {
      writeConfig('plugins: {}');
      const store = await DeclarativePluginStateStore.open(file, 1000, metrics);
      const parse = jest.spyOn(pluginsConfig, 'parsePluginsConfig');
      for (let i = 0; i < 3; i++) expect(await store.poll()).toBe(false);
      expect(parse).not.toHaveBeenCalled();
      writeConfig('plugins: {echo: {}}');
      expect(await store.poll()).toBe(true);
      expect(await store.poll()).toBe(false);
      expect(parse).toHaveBeenCalledTimes(1);
    });

    it('save → 409 CONFLICT naming the file', async () => {
      writeConfig('plugins: {}');
      const store = await DeclarativePluginStateStore.open(file, 1000, metrics);
      const refusal = await store.save().catch((err: unknown) => err);
      expect(refusal).toBeInstanceOf(PluginException);
      expect((refusal as PluginException).code).toBe(PluginExceptionCode.CONFLICT);
      expect((refusal as PluginException).message).toContain(file);
    });

    it('follows a ..data swap; an invalid content is logged once and the last good one kept', async () => {
      writeConfig('plugins:\n  echo: { enabled: false }\n');
      const store = await DeclarativePluginStateStore.open(file, 1000, metrics);
      const first = store.describe().generation;
      expect(await metric('portico_config_generation')).toBe(first);
      expect(await store.poll()).toBe(false);

      writeConfig('plugins:\n  echo: { enabled: true }\n');
      expect(await store.poll()).toBe(true);
      expect((await store.load()).get('echo')).toEqual({ enabled: true });
      const second = store.describe().generation;
      expect(second).not.toBe(first);

      writeConfig('plugins:\n  echo: { enabled: maybe }\n');
      expect(await store.poll()).toBe(false);
      expect(await store.poll()).toBe(false);
      expect(errorLog).toHaveBeenCalledTimes(1);
      expect(store.describe()).toMatchObject({
        generation: second,
        lastError: expect.stringContaining('plugins.echo.enabled must be a boolean') as string,
      });
      expect((await store.load()).get('echo')).toEqual({ enabled: true });
      expect(await metric('portico_config_valid')).toBe(0);
      expect(await metric('portico_config_reload_failures_total')).toBe(1);
      expect(await metric('portico_config_generation')).toBe(second);

      rmSync(configDir, { recursive: true });
      expect(await store.poll()).toBe(false);
      expect(store.describe().lastError).toBe('cannot be read (ENOENT)');
      expect(await metric('portico_config_reload_failures_total')).toBe(2);

      // The last good content again: valid, nothing new to apply.
      writeConfig('plugins:\n  echo: { enabled: true }\n');
      expect(await store.poll()).toBe(false);
      expect(store.describe().lastError).toBeUndefined();
      expect(await metric('portico_config_valid')).toBe(1);
    });

    it('a file larger than 64 KiB, a folder, a FIFO or a device → refused without reading it', async () => {
      writeConfig('plugins: {}');
      const store = await DeclarativePluginStateStore.open(file, 1000, metrics);
      writeConfig(`# ${'x'.repeat(64 * 1024)}\n`);
      await store.poll();
      expect(store.describe().lastError).toBe('larger than 65536 bytes');
      rmSync(configDir, { recursive: true });
      mkdirSync(file, { recursive: true });
      await store.poll();
      expect(store.describe().lastError).toBe('not a regular file');
      // A FIFO would block an ordinary open until a writer comes: refused without waiting.
      rmSync(configDir, { recursive: true });
      mkdirSync(configDir);
      execFileSync('mkfifo', [file]);
      expect(await store.poll()).toBe(false);
      expect(store.describe().lastError).toBe('not a regular file');
      rmSync(file);
      symlinkSync('/dev/zero', file);
      expect(await store.poll()).toBe(false);
      expect(store.describe().lastError).toBe('not a regular file');
    });
  });

  describe('the registry on a watched store', () => {
    it('a burst of change notifications → one reload for the burst, and one for a change during it', async () => {
      let notify = (): void => undefined;
      let loads = 0;
      let release = (): void => undefined;
      const store: PluginStateStore = {
        load: async () => {
          loads++;
          await new Promise<void>((r) => (release = r));
          return new Map();
        },
        save: () => Promise.resolve(),
        watch: (onChange) => {
          notify = onChange;
          return () => undefined;
        },
      };
      const registry = new PluginRegistry(
        Object.assign(new PorticoConfig(), { PLUGINS_DIR: pluginsDir }),
        store,
      );
      registry.onModuleInit();
      try {
        for (let i = 0; i < 50; i++) notify();
        await waitUntil(() => loads === 1);
        // While that reload runs, more changes: exactly one more reload follows.
        for (let i = 0; i < 50; i++) notify();
        release();
        await waitUntil(() => loads === 2);
        release();
        // Work queued after everything the notifications queued: once it ran, nothing is left.
        await registry.scan();
        expect(loads).toBe(2);
      } finally {
        registry.onModuleDestroy();
      }
    });

    it('applies a new config to every descriptor and reports what changed for whom', async () => {
      plugin('echo', { restart: { maxFailedStarts: 9, initialBackoffMs: 700 } });
      plugin('term');
      writeConfig('plugins:\n  term: { roles: [ops] }\n');
      const store = await DeclarativePluginStateStore.open(file, 50, metrics);
      const config = Object.assign(new PorticoConfig(), { PLUGINS_DIR: pluginsDir });
      const registry = new PluginRegistry(config, store);
      await registry.scan();
      expect(registry.require('term').accessRoles).toEqual(['ops']);
      const changes: PluginStateChange[][] = [];
      const accessChanged: string[] = [];
      registry.onStateChange((c) => changes.push([...c]));
      registry.onAccessChange((name) => accessChanged.push(name));
      registry.onModuleInit();
      try {
        writeConfig(
          'plugins:\n  echo: { enabled: false, restart: { maxFailedStarts: 2 } }\n  term: {}\n  gone: {}\n',
        );
        await waitUntil(() => changes.length > 0);
        expect(changes[0]).toEqual([
          { name: 'echo', enabled: true, access: false, restart: true },
          { name: 'term', enabled: false, access: true, restart: false },
        ]);
        expect(accessChanged).toEqual(['term']);
        const echo = registry.require('echo');
        expect(echo.enabled).toBe(false);
        expect(registry.require('term').accessRoles).toEqual([]);
        // PLUGINS_CONFIG's fields override the manifest's, field by field.
        expect(policyFor(echo.manifest, echo.restartOverrides)).toMatchObject({
          maxFailedStarts: 2,
          initialBackoffMs: 700,
        });
        // An API write is refused while PLUGINS_CONFIG is the source.
        await expect(registry.setEnabled('echo', true)).rejects.toThrow(file);
        // `gone` is listed but not installed: a likely typo, warned once and shown in /readyz.
        expect(registry.stateSource()).toMatchObject({
          source: 'PLUGINS_CONFIG',
          file,
          notInstalled: ['gone'],
        });
        const notInstalled = (): unknown[] =>
          warnLog.mock.calls.filter(
            ([line]) => (line as { event?: string }).event === 'plugins_config_not_installed',
          );
        expect(notInstalled()).toHaveLength(1);
        await registry.scan();
        expect(notInstalled()).toHaveLength(1);
      } finally {
        registry.onModuleDestroy();
      }
    });
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!condition()) throw new Error('condition not met within 5 s');
}
