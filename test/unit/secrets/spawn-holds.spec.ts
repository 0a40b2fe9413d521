import 'reflect-metadata';

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { PorticoConfig } from '../../../src/config/portico-config';
import { PorticoMetrics } from '../../../src/metrics/portico-metrics';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import { registryFor } from '../../helpers/registry';
import { PluginProcessManager } from '../../../src/plugins/process/plugin-process-manager.service';
import { PluginIdentityService } from '../../../src/plugins/secrets/plugin-identity.service';
import { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { FakeClock } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';
import { secretsGraph } from './secrets-graph';

const OLD = 'ghp_old_value_0123456789';
const NEW = 'ghp_new_value_9876543210';

/**
 * The values a process was given at spawn stay redacted from its output until that output has
 * ended (`close`), however the store changed meanwhile: through the real process manager and
 * secrets service, with a scripted child process.
 */
/*
 * `void manager.start/restart/stop(...)` below: the fake spawner's processes are driven by hand
 * (ready, print, exit), so the promises settle only after the steps that follow; the tests
 * assert the log lines. Start promises carry their own catch (PluginSupervisor.waitForStart) and
 * stop never rejects, so dropping them cannot become an unhandled rejection.
 */
describe('secret values held by a plugin process', () => {
  let root: string;
  let secrets: PluginSecretsService;
  let manager: PluginProcessManager;
  let spawner: FakeSpawner;
  let registry: PluginRegistry;

  beforeEach(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-holds-')));
    const dir = join(root, 'plugins', 'board');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), '');
    writeFileSync(join(dir, 'server.js'), '');
    writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify({
        name: 'board',
        displayName: 'Board',
        entry: 'index.js',
        server: 'server.js',
        secrets: [{ key: 'GITHUB_TOKEN' }],
      }),
    );
    for (const level of ['log', 'warn', 'error', 'debug'] as const)
      jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
    const config = Object.assign(new PorticoConfig(), {
      PLUGINS_DIR: join(root, 'plugins'),
      DATA_DIR: join(root, 'data'),
      SECRETS_KEY: randomBytes(32).toString('base64'),
      LOG_LEVEL: 'silent',
    });
    registry = registryFor(config);
    await registry.scan();
    secrets = secretsGraph(config, registry).service;
    spawner = new FakeSpawner();
    manager = new PluginProcessManager(
      config,
      new PluginIdentityService(config),
      secrets,
      new PorticoMetrics(),
      new FakeClock(),
      spawner,
    );
  });

  afterEach(() => {
    secrets.onModuleDestroy();
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  const lines = (): string[] => manager.tail('board', 1000).map((l) => l.line);

  it('old process printing a rotated value while stopping and after its exit → hidden until its output ends', async () => {
    await secrets.set('board', 'GITHUB_TOKEN', OLD);
    const descriptor = registry.require('board');
    void manager.start(descriptor);
    const old = spawner.last;
    old.ready();

    await secrets.set('board', 'GITHUB_TOKEN', NEW);
    void manager.restart(descriptor);
    old.print(`stopping with ${OLD}`);
    old.exit(0);
    const next = spawner.last;
    expect(next).not.toBe(old);
    expect(next.spec.env.GITHUB_TOKEN).toBe(NEW);
    // Still draining from the pipe after the exit was reported.
    old.print(`flushed ${Buffer.from(`u:${OLD}`).toString('base64')}`, 'stderr');
    expect(lines().join('\n')).not.toContain(OLD);
    expect(lines()).toEqual(
      expect.arrayContaining(['stopping with [REDACTED]', 'flushed dTp[REDACTED]k=']),
    );

    old.close();
    // No process holds it any more: it is no longer anyone's secret.
    next.print(`now ${OLD} and ${NEW}`);
    expect(lines().at(-1)).toBe(`now ${OLD} and [REDACTED]`);
  });

  it('secret deleted while the process runs → still hidden in its output until it closes', async () => {
    await secrets.set('board', 'GITHUB_TOKEN', OLD);
    const descriptor = registry.require('board');
    void manager.start(descriptor);
    const child = spawner.last;
    child.ready();
    await secrets.delete('board', 'GITHUB_TOKEN');
    child.print(`still ${OLD}`);
    expect(lines().at(-1)).toBe('still [REDACTED]');
    expect(secrets.redact('board', OLD)).toBe('[REDACTED]');
    void manager.stop('board');
    child.exit(0);
    child.close();
    expect(secrets.redact('board', OLD)).toBe(OLD);
  });
});
