import { Inject, Module, OnApplicationShutdown } from '@nestjs/common';

import { ClockModule } from '../../common/clock.module';
import { SecretsModule } from '../secrets/secrets.module';
import { DATA_DIR_LOCK, DataDirLock } from './data-dir-lock';
import { PluginProcessManager } from './plugin-process-manager.service';
import { PROCESS_PROVIDERS } from './process.providers';

/**
 * The process room: each plugin's server spawned, supervised (ready line, restart with backoff,
 * stop), its output kept, its escaped processes found and ended, and what a killed host left
 * running ended at the next start. One host per DATA_DIR (the DATA_DIR lock, taken before that
 * sweep). Others use it only through PluginProcessManager; every side effect sits behind a
 * provider in PROCESS_PROVIDERS.
 */
@Module({
  imports: [ClockModule, SecretsModule],
  providers: [...PROCESS_PROVIDERS, PluginProcessManager],
  exports: [PluginProcessManager],
})
export class ProcessModule implements OnApplicationShutdown {
  public constructor(@Inject(DATA_DIR_LOCK) private readonly lock: DataDirLock) {}

  /**
   * Nest calls a module's own hook after its providers' hooks have settled: the lock is
   * released only once PluginProcessManager has stopped every plugin, so a host started next
   * on this DATA_DIR never finds them still running.
   */
  public onApplicationShutdown(): void {
    this.lock.release();
  }
}
