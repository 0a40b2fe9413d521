import 'reflect-metadata';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Inject, Injectable, Logger, Module } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';

import { Clock, CLOCK } from '../../../src/common/clock';
import { ClockModule } from '../../../src/common/clock.module';
import { ConfigModule } from '../../../src/config/config.module';
import { PorticoConfig } from '../../../src/config/portico-config';
import { MetricsModule } from '../../../src/metrics/metrics.module';
import type { ManifestDto } from '../../../src/plugins/manifest/manifest.dto';
import { CHILD_LEDGER, ChildLedger } from '../../../src/plugins/process/child-ledger';
import {
  DATA_DIR_LOCK,
  DataDirLock,
  DataDirLockedError,
} from '../../../src/plugins/process/data-dir-lock';
import { HOST_PROCESS } from '../../../src/plugins/process/host-process';
import { PluginProcessManager } from '../../../src/plugins/process/plugin-process-manager.service';
import { PROCESS_SPAWNER } from '../../../src/plugins/process/process-spawner';
import { ProcessModule } from '../../../src/plugins/process/process.module';
import { PluginIdentityService } from '../../../src/plugins/secrets/plugin-identity.service';
import { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { FakeClock } from '../../helpers/fake-clock';
import { FakeSpawner } from '../../helpers/fake-spawner';
import { hostProcess } from './host-process.fixture';

@Injectable()
class Consumer {
  public constructor(
    public readonly processes: PluginProcessManager,
    @Inject(CLOCK) public readonly clock: Clock,
  ) {}
}

@Module({ imports: [ClockModule, ProcessModule], providers: [Consumer] })
class ConsumerModule {}

/** ProcessModule as Nest builds it: what it exports, the order of its side effects, fakes in. */
describe('ProcessModule', () => {
  let dataDir: string;
  let moduleRef: TestingModule | undefined;
  /** What the fake lock and ledger were asked to do, in order. */
  let calls: string[];
  let lockError: Error | undefined;

  const lock: DataDirLock = {
    acquire: () => {
      calls.push('acquire');
      if (lockError !== undefined) throw lockError;
    },
    release: () => calls.push('release'),
  };
  const ledger: ChildLedger = {
    add: () => calls.push('add'),
    remove: () => calls.push('remove'),
    reapEarlierRun: () => {
      calls.push('reap');
      return [];
    },
  };

  const build = (
    replace: (b: ReturnType<typeof Test.createTestingModule>) => typeof b = (b) => b,
  ) =>
    replace(
      Test.createTestingModule({
        imports: [
          ConfigModule.forRoot(
            Object.assign(new PorticoConfig(), {
              DATA_DIR: dataDir,
              PLUGINS_DIR: dataDir,
              LOG_LEVEL: 'silent',
            }),
          ),
          MetricsModule,
          ConsumerModule,
        ],
      })
        .overrideProvider(DATA_DIR_LOCK)
        .useValue(lock)
        .overrideProvider(CHILD_LEDGER)
        .useValue(ledger)
        .overrideProvider(HOST_PROCESS)
        .useValue(hostProcess())
        .overrideProvider(PluginSecretsService)
        .useValue({
          envFor: () => ({}),
          hold: () => () => undefined,
          redact: (_: string, l: string) => l,
        })
        .overrideProvider(PluginIdentityService)
        .useValue({ secretFor: () => 'identity' }),
    ).compile();

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-process-module-'));
    calls = [];
    lockError = undefined;
    for (const level of ['log', 'warn', 'error'] as const)
      jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
  });

  afterEach(async () => {
    await moduleRef?.close();
    moduleRef = undefined;
    jest.restoreAllMocks();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('exports PluginProcessManager, sharing the one ClockModule clock', async () => {
    moduleRef = await build();
    const consumer = moduleRef.get(Consumer);
    expect(consumer.processes).toBeInstanceOf(PluginProcessManager);
    expect(typeof consumer.clock.now()).toBe('number');
  });

  it('takes the DATA_DIR lock before the sweep of what an earlier host left', async () => {
    moduleRef = await build();
    await moduleRef.init();
    expect(calls).toEqual(['acquire', 'reap']);
  });

  it('does not sweep when the lock is held by another host: the start fails with its error', async () => {
    lockError = new DataDirLockedError('DATA_DIR /x is in use by another Portico', undefined);
    const failed = await build();
    await expect(failed.init()).rejects.toBe(lockError);
    expect(calls).toEqual(['acquire']);
    // Nothing to stop: close() itself reports the failed init again.
    await expect(failed.close()).rejects.toBe(lockError);
  });

  it('releases the lock only after every plugin has stopped', async () => {
    const spawner = new FakeSpawner();
    const clock = new FakeClock();
    moduleRef = await build((b) =>
      b.overrideProvider(PROCESS_SPAWNER).useValue(spawner).overrideProvider(CLOCK).useValue(clock),
    );
    await moduleRef.init();
    const processes = moduleRef.get(PluginProcessManager);
    const started = processes.start({
      name: 'board',
      folder: 'board',
      dir: dataDir,
      manifest: { name: 'board', server: 'server.js' } as ManifestDto,
      enabled: true,
      accessRoles: [],
    });
    spawner.last.ready();
    await started;

    const closing = moduleRef.close();
    moduleRef = undefined;
    await waitUntil(() => spawner.last.signals.includes('SIGTERM'));
    expect(calls).not.toContain('release'); // the plugin is still stopping
    spawner.last.exit(null, 'SIGTERM');
    await closing;
    expect(calls).toEqual(['release']);
  });
});

/** Lets promise callbacks run until `done()` (a fake clock never advances by itself). */
async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setImmediate(r));
  if (!done()) throw new Error('condition not reached');
}
