import 'reflect-metadata';

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Injectable, Logger, Module } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';

import { MetricsModule } from '../../../src/metrics/metrics.module';
import { ConfigModule } from '../../../src/config/config.module';
import { PorticoConfig } from '../../../src/config/portico-config';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import { MountedSecrets } from '../../../src/plugins/secrets/mounted-secrets';
import { PluginIdentityService } from '../../../src/plugins/secrets/plugin-identity.service';
import { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { SecretCipher } from '../../../src/plugins/secrets/secret-cipher';
import { SecretSources } from '../../../src/plugins/secrets/secret-sources.service';
import { FileSecretStore } from '../../../src/plugins/secrets/file-secret-store';
import { SecretsModule } from '../../../src/plugins/secrets/secrets.module';
import { MOUNTED_SECRETS, SECRET_STORE } from '../../../src/plugins/secrets/secrets.providers';
import { writeSecretVolume } from '../../helpers/kubernetes-volume';

/** SecretsModule as Nest builds it: its providers, what it exports, and what tests can replace. */
describe('SecretsModule', () => {
  let root: string;
  let config: PorticoConfig;
  let moduleRef: TestingModule | undefined;

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-secrets-module-')));
    const dir = join(root, 'plugins', 'board');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), '');
    writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify({
        name: 'board',
        displayName: 'Board',
        entry: 'index.js',
        secrets: [{ key: 'GITHUB_TOKEN', required: true }, { key: 'WEBHOOK_SECRET' }],
      }),
    );
    for (const level of ['log', 'warn', 'error', 'debug'] as const)
      jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
    config = Object.assign(new PorticoConfig(), {
      PLUGINS_DIR: join(root, 'plugins'),
      DATA_DIR: join(root, 'data'),
      SECRETS_KEY: randomBytes(32).toString('base64'),
    });
  });

  afterEach(async () => {
    await moduleRef?.close();
    moduleRef = undefined;
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  async function start(
    build: (builder: ReturnType<typeof Test.createTestingModule>) => typeof builder = (b) => b,
  ): Promise<PluginSecretsService> {
    moduleRef = await build(
      Test.createTestingModule({
        imports: [ConfigModule.forRoot(config), MetricsModule, SecretsModule],
      }),
    ).compile();
    await moduleRef.init();
    await moduleRef.get(PluginRegistry, { strict: false }).scan();
    return moduleRef.get(PluginSecretsService);
  }

  it('builds the store in DATA_DIR from SECRETS_KEY', async () => {
    const secrets = await start();
    await secrets.set('board', 'GITHUB_TOKEN', 'ghp_module_value');
    expect(existsSync(join(root, 'data', 'secrets.enc.json'))).toBe(true);
    expect(secrets.envFor('board')).toEqual({ GITHUB_TOKEN: 'ghp_module_value' });
  });

  it('runs without SECRETS_KEY: no store, plugins that need one do not start', async () => {
    config.SECRETS_KEY = undefined;
    const secrets = await start();
    expect(() => secrets.envFor('board')).toThrow(
      'secret store is corrupt: SECRETS_KEY is not set',
    );
    expect(secrets.list('board')).toEqual([
      { key: 'GITHUB_TOKEN', required: true, set: false, source: null },
      { key: 'WEBHOOK_SECRET', required: false, set: false, source: null },
    ]);
  });

  it('lets tests replace the store and the mounted files (overrideProvider)', async () => {
    const elsewhere = join(root, 'elsewhere', 'store.json');
    const store = new FileSecretStore(elsewhere, new SecretCipher(randomBytes(32)));
    const mountedDir = join(root, 'mounted');
    writeSecretVolume(join(mountedDir, 'board'), { WEBHOOK_SECRET: 'whsec_mounted' });
    const secrets = await start((b) =>
      b
        .overrideProvider(SECRET_STORE)
        .useValue(store)
        .overrideProvider(MOUNTED_SECRETS)
        .useValue(new MountedSecrets(mountedDir)),
    );
    await secrets.set('board', 'GITHUB_TOKEN', 'ghp_overridden');
    expect(store.read('board', 'GITHUB_TOKEN')).toBe('ghp_overridden');
    expect(existsSync(join(root, 'data', 'secrets.enc.json'))).toBe(false);
    expect(secrets.list('board').map((s) => s.source)).toEqual(['store', 'file']);
    expect(secrets.envFor('board')).toEqual({
      GITHUB_TOKEN: 'ghp_overridden',
      WEBHOOK_SECRET: 'whsec_mounted',
    });
  });

  it('exports PluginSecretsService and PluginIdentityService, and nothing else', async () => {
    @Injectable()
    class Consumer {
      public constructor(
        public readonly secrets: PluginSecretsService,
        public readonly identity: PluginIdentityService,
      ) {}
    }
    @Module({ imports: [SecretsModule], providers: [Consumer] })
    class ConsumerModule {}
    moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), MetricsModule, ConsumerModule],
    }).compile();
    const consumer = moduleRef.get(Consumer, { strict: false });
    expect(consumer.secrets).toBeInstanceOf(PluginSecretsService);
    expect(consumer.identity.secretFor('board')).toMatch(/^[0-9a-f]{64}$/);

    @Injectable()
    class Intruder {
      public constructor(public readonly sources: SecretSources) {}
    }
    @Module({ imports: [SecretsModule], providers: [Intruder] })
    class IntruderModule {}
    await expect(
      Test.createTestingModule({
        imports: [ConfigModule.forRoot(config), MetricsModule, IntruderModule],
      }).compile(),
    ).rejects.toThrow(/can't resolve dependencies of the Intruder/);
  });
});
