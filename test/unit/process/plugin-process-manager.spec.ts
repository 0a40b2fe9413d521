import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { PorticoConfig } from '../../../src/config/portico-config';
import { PorticoMetrics } from '../../../src/metrics/portico-metrics';
import type { ManifestDto } from '../../../src/plugins/manifest/manifest.dto';
import type { PluginDescriptor } from '../../../src/plugins/manifest/plugin-descriptor';
import { PluginProcessManager } from '../../../src/plugins/process/plugin-process-manager.service';
import { SpawnPreconditionError } from '../../../src/plugins/process/plugin-supervisor';
import type { PluginIdentityService } from '../../../src/plugins/secrets/plugin-identity.service';
import type { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { PluginException, PluginExceptionCode } from '../../../src/plugins/shared/plugin.exception';
import { FakeClock } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';

/**
 * What the process manager makes of the secrets room's answer at spawn, with a scripted
 * secrets service and spawner: a value that cannot be had fails the plugin, naming why.
 */
describe('PluginProcessManager: secrets at spawn', () => {
  let dataDir: string;
  let spawner: FakeSpawner;
  let envFor: jest.Mock<Record<string, string>, [string]>;
  let manager: PluginProcessManager;

  const descriptor = (): PluginDescriptor => ({
    name: 'board',
    folder: 'board',
    dir: dataDir,
    manifest: { name: 'board', server: 'server.js' } as ManifestDto,
    enabled: true,
    accessRoles: [],
  });

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-manager-'));
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    spawner = new FakeSpawner();
    envFor = jest.fn<Record<string, string>, [string]>();
    const secrets = {
      envFor,
      hold: () => () => undefined,
      redact: (_: string, line: string) => line,
    } as unknown as PluginSecretsService;
    const identity = { secretFor: () => 'identity' } as unknown as PluginIdentityService;
    const config = Object.assign(new PorticoConfig(), { DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
    manager = new PluginProcessManager(
      config,
      identity,
      secrets,
      new PorticoMetrics(),
      new FakeClock(),
      spawner,
    );
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it.each([
    [
      'PluginException SECRETS_UNAVAILABLE',
      new PluginException(
        PluginExceptionCode.SECRETS_UNAVAILABLE,
        'missing required secrets: API_KEY',
      ),
    ],
    [
      'SpawnPreconditionError (before the secrets room threw coded exceptions)',
      new SpawnPreconditionError('missing required secrets: API_KEY'),
    ],
  ])('%s → failed without a spawn, the reason in lastError', async (_, thrown) => {
    envFor.mockImplementation(() => {
      throw thrown;
    });
    await expect(manager.start(descriptor())).rejects.toThrow(
      'plugin board failed: missing required secrets: API_KEY',
    );
    expect(spawner.children).toHaveLength(0);
    expect(manager.snapshot('board')).toMatchObject({
      state: 'failed',
      lastError: 'missing required secrets: API_KEY',
    });
  });

  it('hands the values to the process, under the host’s own variables', async () => {
    envFor.mockReturnValue({ API_KEY: 'k', PLUGIN_NAME: 'spoofed' });
    const started = manager.start(descriptor());
    expect(spawner.last.spec.env).toMatchObject({ API_KEY: 'k', PLUGIN_NAME: 'board' });
    spawner.last.ready();
    await expect(started).resolves.toBeUndefined();
  });
});
