import 'reflect-metadata';

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { PorticoConfig } from '../../../src/config/portico-config';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import { registryFor } from '../../helpers/registry';
import { MountedSecrets } from '../../../src/plugins/secrets/mounted-secrets';
import { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { PluginException, PluginExceptionCode } from '../../../src/plugins/shared/plugin.exception';
import { writeSecretVolume } from '../../helpers/kubernetes-volume';
import { secretsGraph } from './secrets-graph';

const BOARD_TOKEN = 'ghp_board_secret_0123456789';
const ASSISTANT_KEY = 'sk-assistant-secret-9876543210';

describe('PluginSecretsService', () => {
  let root: string;
  let pluginsDir: string;
  let dataDir: string;
  let secretsDir: string;
  let registry: PluginRegistry;
  let error: jest.SpyInstance;
  const secretsKey = randomBytes(32).toString('base64');

  function plugin(name: string, secrets: unknown[]): void {
    const dir = join(pluginsDir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), '');
    writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify({ name, displayName: name, entry: 'index.js', secrets }),
    );
  }

  const config = (extra: Partial<PorticoConfig> = {}): PorticoConfig =>
    Object.assign(new PorticoConfig(), {
      PLUGINS_DIR: pluginsDir,
      DATA_DIR: dataDir,
      SECRETS_KEY: secretsKey,
      PLUGIN_SECRETS_DIR: secretsDir,
      ...extra,
    });

  const services: PluginSecretsService[] = [];
  function newSecrets(extra: Partial<PorticoConfig> = {}): {
    service: PluginSecretsService;
    mounted: MountedSecrets;
  } {
    const { service, mounted } = secretsGraph(config(extra), registry);
    services.push(service);
    if (mounted === null) throw new Error('these tests set PLUGIN_SECRETS_DIR');
    return { service, mounted };
  }
  const newService = (extra: Partial<PorticoConfig> = {}): PluginSecretsService =>
    newSecrets(extra).service;

  /** The error `fn` throws (sync or async). */
  async function caught(fn: () => unknown): Promise<unknown> {
    try {
      await fn();
    } catch (err) {
      return err;
    }
    throw new Error('expected an error');
  }
  /** The PluginException `fn` throws, as the HTTP answer would carry it. */
  async function pluginError(
    fn: () => unknown,
  ): Promise<{ code: PluginExceptionCode; status: number; message: string }> {
    const err = await caught(fn);
    expect(err).toBeInstanceOf(PluginException);
    const e = err as PluginException;
    return { code: e.code, status: e.httpStatus, message: e.message };
  }

  beforeEach(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-secrets-')));
    pluginsDir = join(root, 'plugins');
    dataDir = join(root, 'data');
    secretsDir = join(root, 'mounted');
    mkdirSync(pluginsDir);
    mkdirSync(secretsDir);
    error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
    plugin('board', [
      { key: 'GITHUB_TOKEN', description: 'repo access', required: true },
      { key: 'WEBHOOK_SECRET' },
    ]);
    plugin('assistant', [{ key: 'MODEL_KEY', required: true }]);
    plugin('plain', []);
    registry = registryFor(config());
    await registry.scan();
  });

  afterEach(() => {
    for (const s of services.splice(0)) s.onModuleDestroy();
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  describe('list', () => {
    it('shows each declared key with required, set and source, never a value', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(service.list('board')).toEqual([
        { key: 'GITHUB_TOKEN', required: true, set: true, source: 'store' },
        { key: 'WEBHOOK_SECRET', required: false, set: false, source: null },
      ]);
      expect(JSON.stringify(service.list('board'))).not.toContain(BOARD_TOKEN);
      expect(service.list('plain')).toEqual([]);
      expect(service.list('no-such-plugin')).toEqual([]);
    });

    it('says `file` for a key that a mounted file provides, even when the store has one too', async () => {
      const { service, mounted } = newSecrets();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'from-the-volume\n' });
      mounted.poll();
      expect(service.list('board')[0]).toEqual({
        key: 'GITHUB_TOKEN',
        required: true,
        set: true,
        source: 'file',
      });
      expect(service.envFor('board')).toEqual({ GITHUB_TOKEN: 'from-the-volume' });
    });
  });

  describe('envFor', () => {
    it("gives a plugin exactly its own declared values and nothing of another plugin's", async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      await service.set('board', 'WEBHOOK_SECRET', 'whsec_1234');
      await service.set('assistant', 'MODEL_KEY', ASSISTANT_KEY);
      expect(service.envFor('board')).toEqual({
        GITHUB_TOKEN: BOARD_TOKEN,
        WEBHOOK_SECRET: 'whsec_1234',
      });
      expect(service.envFor('assistant')).toEqual({ MODEL_KEY: ASSISTANT_KEY });
      expect(service.envFor('plain')).toEqual({});
    });

    it('refuses to start a plugin whose required secrets are missing, naming them', async () => {
      plugin('multi', [
        { key: 'A_KEY', required: true },
        { key: 'B_KEY', required: true },
      ]);
      await registry.scan();
      const service = newService();
      expect(await pluginError(() => service.envFor('multi'))).toEqual({
        code: PluginExceptionCode.SECRETS_UNAVAILABLE,
        status: 409,
        message: 'missing required secrets: A_KEY, B_KEY',
      });
      expect(service.missingRequired('multi')).toEqual(['A_KEY', 'B_KEY']);
      await service.set('multi', 'A_KEY', 'value-a');
      expect(service.missingRequired('multi')).toEqual(['B_KEY']);
    });

    it('reads mounted files at spawn time, without waiting for the poll', async () => {
      const service = newService();
      writeSecretVolume(join(secretsDir, 'assistant'), { MODEL_KEY: 'one' });
      expect(service.envFor('assistant')).toEqual({ MODEL_KEY: 'one' });
      writeSecretVolume(join(secretsDir, 'assistant'), { MODEL_KEY: 'two' });
      expect(service.envFor('assistant')).toEqual({ MODEL_KEY: 'two' });
    });
  });

  describe('headersFor', () => {
    it('sends each set secret as x-plugin-secret-<lower-cased key>, if a header can carry it', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      await service.set('board', 'WEBHOOK_SECRET', 'line one\nline two');
      expect(service.headersFor('board')).toEqual({ 'x-plugin-secret-github_token': BOARD_TOKEN });
      expect(service.headersFor('assistant')).toEqual({});
    });
  });

  describe('set and delete', () => {
    it('404s an unknown plugin with PluginException UNKNOWN_PLUGIN', async () => {
      const service = newService();
      const err = await caught(() => service.set('ghost', 'GITHUB_TOKEN', 'v'));
      expect(err).toBeInstanceOf(PluginException);
      expect((err as PluginException).code).toBe(PluginExceptionCode.UNKNOWN_PLUGIN);
      expect(await caught(() => service.delete('ghost', 'GITHUB_TOKEN'))).toBeInstanceOf(
        PluginException,
      );
    });

    it.each([
      ['lower', 'key must match'],
      ['1ABC', 'key must match'],
      ['A'.repeat(65), 'key must match'],
      ['PATH', 'reserved'],
      ['NODE_OPTIONS', 'reserved'],
      ['PLUGIN_NAME', 'reserved'],
      ['LD_PRELOAD', 'reserved'],
      ['PORTICO_X', 'reserved'],
      ['UNDECLARED', 'does not declare a secret UNDECLARED'],
    ])('400s key %s', async (key, message) => {
      const service = newService();
      const res = await pluginError(() => service.set('board', key, 'value-that-must-not-leak'));
      expect(res.code).toBe(PluginExceptionCode.INVALID_REQUEST);
      expect(res.status).toBe(400);
      expect(res.message).toContain(message);
      expect(res.message).not.toContain('value-that-must-not-leak');
    });

    it('never echoes an invalid key (it may be a value pasted in the wrong place)', async () => {
      const service = newService();
      const res = await pluginError(() => service.set('board', 'ghp_pasted_by_mistake', 'x'));
      expect(res.message).not.toContain('ghp_pasted_by_mistake');
    });

    it.each([
      ['too large', 'x'.repeat(64 * 1024 + 1), 'at most 65536 bytes'],
      ['too large in UTF-8', 'é'.repeat(40 * 1024), 'at most 65536 bytes'],
      ['with a NUL', 'abc\0def', 'NUL'],
    ])('400s a value %s without echoing it', async (_what, value, message) => {
      const service = newService();
      const res = await pluginError(() => service.set('board', 'GITHUB_TOKEN', value));
      expect(res.code).toBe(PluginExceptionCode.INVALID_REQUEST);
      expect(res.status).toBe(400);
      expect(res.message).toContain(message);
      expect(res.message).not.toContain(value.slice(0, 8));
    });

    it('accepts the largest value', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', 'x'.repeat(64 * 1024));
      expect(service.envFor('board').GITHUB_TOKEN).toHaveLength(64 * 1024);
    });

    it('404s deleting a key that is not set, 409s one that only a mounted file sets', async () => {
      const service = newService();
      expect(await pluginError(() => service.delete('board', 'GITHUB_TOKEN'))).toEqual({
        code: PluginExceptionCode.SECRET_NOT_SET,
        status: 404,
        message: 'secret GITHUB_TOKEN is not set',
      });

      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'mounted' });
      expect(await pluginError(() => service.delete('board', 'GITHUB_TOKEN'))).toEqual({
        code: PluginExceptionCode.CONFLICT,
        status: 409,
        message:
          'secret GITHUB_TOKEN comes from a mounted file; remove it from PLUGIN_SECRETS_DIR instead',
      });
      expect((await pluginError(() => service.delete('board', 'lower'))).status).toBe(400);
    });

    it('deletes a stored value', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      await service.delete('board', 'GITHUB_TOKEN');
      expect(service.list('board')[0].set).toBe(false);
      expect((await pluginError(() => service.envFor('board'))).message).toBe(
        'missing required secrets: GITHUB_TOKEN',
      );
    });

    it('keeps values across restarts of the host', async () => {
      await newService().set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(newService().envFor('board')).toEqual({ GITHUB_TOKEN: BOARD_TOKEN });
    });
  });

  describe('onChange', () => {
    it('tells listeners after set and delete, until they unsubscribe', async () => {
      const service = newService();
      const seen: string[] = [];
      const off = service.onChange((name) => seen.push(name));
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      await service.delete('board', 'GITHUB_TOKEN');
      await service.set('assistant', 'MODEL_KEY', ASSISTANT_KEY);
      off();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(seen).toEqual(['board', 'board', 'assistant']);
    });

    it('does not tell listeners about a write that was refused', async () => {
      const service = newService();
      const listener = jest.fn();
      service.onChange(listener);
      await caught(() => service.set('board', 'UNDECLARED', 'x'));
      expect(listener).not.toHaveBeenCalled();
    });

    it('tells listeners when the mounted files of a plugin change (Kubernetes swap)', async () => {
      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'first' });
      const { service, mounted } = newSecrets();
      const listener = jest.fn();
      service.onChange(listener);
      expect(service.envFor('board')).toEqual({ GITHUB_TOKEN: 'first' });
      expect(mounted.poll()).toEqual([]);

      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'second' });
      expect(mounted.poll()).toEqual(['board']);
      expect(listener).toHaveBeenCalledWith('board');
      expect(service.envFor('board')).toEqual({ GITHUB_TOKEN: 'second' });
      expect(mounted.poll()).toEqual([]);
    });

    it('stops watching the mounted files when the module is destroyed', () => {
      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'first' });
      const { service, mounted } = newSecrets();
      const listener = jest.fn();
      service.onChange(listener);
      expect(service.list('board')[0]).toMatchObject({ set: true, source: 'file' });
      service.onModuleDestroy();
      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'second' });
      expect(mounted.poll()).toEqual([]);
      expect(listener).not.toHaveBeenCalled();
    });

    it('keeps notifying other listeners when one throws', async () => {
      const service = newService();
      const second = jest.fn();
      service.onChange(() => {
        throw new Error('boom');
      });
      service.onChange(second);
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(second).toHaveBeenCalledWith('board');
    });
  });

  describe('redaction', () => {
    it("hides a plugin's own values in its output", async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(service.redact('board', `using ${BOARD_TOKEN} now`)).toBe('using [REDACTED] now');
      expect(service.redact('assistant', `using ${BOARD_TOKEN}`)).toBe(`using ${BOARD_TOKEN}`);
    });

    it('follows changes: new values are hidden at once', async () => {
      const { service, mounted } = newSecrets();
      expect(service.redact('board', BOARD_TOKEN)).toBe(BOARD_TOKEN);
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      expect(service.redact('board', BOARD_TOKEN)).toBe('[REDACTED]');
      writeSecretVolume(join(secretsDir, 'board'), { WEBHOOK_SECRET: 'mounted-webhook' });
      mounted.poll();
      expect(service.redact('board', `${BOARD_TOKEN} mounted-webhook`)).toBe(
        '[REDACTED] [REDACTED]',
      );
    });

    it("hides a key's stored and mounted value, and a plugin's values only in its own output", async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      await service.set('assistant', 'MODEL_KEY', ASSISTANT_KEY);
      writeSecretVolume(join(secretsDir, 'board'), { GITHUB_TOKEN: 'mounted-token' });
      const line = `${BOARD_TOKEN} mounted-token ${ASSISTANT_KEY}`;
      expect(service.redact('board', line)).toBe(`[REDACTED] [REDACTED] ${ASSISTANT_KEY}`);
      expect(service.redact('assistant', line)).toBe(`${BOARD_TOKEN} mounted-token [REDACTED]`);
    });

    it('keeps a rotated or deleted value hidden while a process holding it may print it', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      // What the old process was given at spawn.
      const release = service.hold('board', Object.values(service.envFor('board')));
      await service.set('board', 'GITHUB_TOKEN', 'ghp_rotated_value_42');
      const line = `old ${BOARD_TOKEN} new ghp_rotated_value_42`;
      expect(service.redact('board', line)).toBe('old [REDACTED] new [REDACTED]');
      await service.delete('board', 'GITHUB_TOKEN');
      expect(service.redact('board', line)).toBe('old [REDACTED] new ghp_rotated_value_42');
      // Only the plugin whose process holds it: another plugin's output is not touched.
      expect(service.redact('assistant', BOARD_TOKEN)).toBe(BOARD_TOKEN);
      release();
      expect(service.redact('board', BOARD_TOKEN)).toBe(BOARD_TOKEN);
      release();
      expect(service.redact('board', BOARD_TOKEN)).toBe(BOARD_TOKEN);
    });

    it('keeps a value held by two processes until both let go', async () => {
      const service = newService();
      const first = service.hold('board', [BOARD_TOKEN]);
      const second = service.hold('board', [BOARD_TOKEN]);
      first();
      first();
      expect(service.redact('board', BOARD_TOKEN)).toBe('[REDACTED]');
      second();
      expect(service.redact('board', BOARD_TOKEN)).toBe(BOARD_TOKEN);
    });
  });

  describe('without SECRETS_KEY', () => {
    it('keeps the host running: one error line, 409 for writes, plugins needing a stored value refuse to start', async () => {
      writeSecretVolume(join(secretsDir, 'assistant'), { MODEL_KEY: ASSISTANT_KEY });
      const service = newService({ SECRETS_KEY: undefined });
      expect(error).toHaveBeenCalledTimes(1);
      expect(error.mock.calls[0][0]).toMatchObject({ event: 'secret_store_unavailable' });

      expect(await pluginError(() => service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN))).toEqual({
        code: PluginExceptionCode.SECRETS_UNAVAILABLE,
        status: 409,
        message: 'secret store is unavailable: SECRETS_KEY is not set',
      });
      expect((await pluginError(() => service.delete('board', 'GITHUB_TOKEN'))).status).toBe(409);
      expect((await pluginError(() => service.envFor('board'))).message).toBe(
        'secret store is corrupt: SECRETS_KEY is not set',
      );
      expect(service.list('board')[0]).toMatchObject({ set: false, source: null });
      // Mounted files need no key.
      expect(service.envFor('assistant')).toEqual({ MODEL_KEY: ASSISTANT_KEY });
    });
  });

  describe('a corrupt store', () => {
    const storeFile = (): string => join(dataDir, 'secrets.enc.json');

    it('does not stop the host: one error line without values, plugins needing it refuse to start', async () => {
      const first = newService();
      await first.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      writeFileSync(
        storeFile(),
        readFileSync(storeFile(), 'utf8').replace(
          /"tag": "[^"]+"/,
          '"tag": "AAAAAAAAAAAAAAAAAAAAAA=="',
        ),
      );

      const service = newService();
      expect(error).toHaveBeenCalledTimes(1);
      expect(error.mock.calls[0][0]).toMatchObject({ event: 'secret_store_corrupt' });
      expect(JSON.stringify(error.mock.calls)).not.toContain(BOARD_TOKEN);

      const err = await pluginError(() => service.envFor('board'));
      expect(err.code).toBe(PluginExceptionCode.SECRETS_UNAVAILABLE);
      expect(err.message).toMatch(/^secret store is corrupt: /);
      expect(service.list('board')[0]).toMatchObject({ set: false, source: null });
      expect(service.envFor('plain')).toEqual({});
      expect(error).toHaveBeenCalledTimes(1);
    });

    it('refuses writes with 409 when the whole store is unreadable, keeping the file', async () => {
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(storeFile(), 'not json at all');
      const service = newService();
      expect(error).toHaveBeenCalledTimes(1);
      const res = await pluginError(() => service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN));
      expect(res.code).toBe(PluginExceptionCode.SECRETS_UNAVAILABLE);
      expect(res.status).toBe(409);
      expect(res.message).toMatch(/^secret store is corrupt: .*; the value was not saved$/);
      expect(res.message).not.toContain(BOARD_TOKEN);
      expect(readFileSync(storeFile(), 'utf8')).toBe('not json at all');
      expect(await pluginError(() => service.delete('board', 'GITHUB_TOKEN'))).toMatchObject({
        code: PluginExceptionCode.SECRETS_UNAVAILABLE,
        message: expect.stringMatching(/; nothing was deleted$/) as unknown,
      });
    });

    it('still starts a plugin whose values all come from mounted files', async () => {
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(storeFile(), 'not json at all');
      writeSecretVolume(join(secretsDir, 'assistant'), { MODEL_KEY: ASSISTANT_KEY });
      const service = newService();
      expect(service.envFor('assistant')).toEqual({ MODEL_KEY: ASSISTANT_KEY });
    });

    it('treats a store sealed with another SECRETS_KEY as corrupt', async () => {
      await newService().set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      const other = newService({ SECRETS_KEY: randomBytes(32).toString('base64') });
      expect(((await caught(() => other.envFor('board'))) as Error).message).toMatch(
        /secret store is corrupt: sealed with another SECRETS_KEY/,
      );
    });

    it('notices a store file replaced while running, at the next spawn', async () => {
      const service = newService();
      await service.set('board', 'GITHUB_TOKEN', BOARD_TOKEN);
      writeFileSync(storeFile(), '{}');
      expect(((await caught(() => service.envFor('board'))) as Error).message).toMatch(
        /^secret store is corrupt: /,
      );
      expect(error).toHaveBeenCalledTimes(1);
    });
  });
});
