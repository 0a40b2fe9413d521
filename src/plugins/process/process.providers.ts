import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Provider } from '@nestjs/common';

import { Clock, CLOCK } from '../../common/clock';
import { PorticoConfig } from '../../config/portico-config';
import { CHILD_LEDGER, CHILD_LEDGER_FILE, ChildLedger, FileChildLedger } from './child-ledger';
import { DATA_DIR_LOCK, DataDirLock, FileDataDirLock } from './data-dir-lock';
import { HOST_PROCESS, HostProcess, readHostProcess, runningIn } from './host-process';
import { NodeProcessSpawner } from './node-process-spawner';
import { PluginProcessTracker } from './plugin-process-tracker';
import { LinuxProcTable, PROC_TABLE, ProcTable } from './proc-table';
import { PROCESS_SPAWNER } from './process-spawner';

/**
 * Every side effect of the process room, each behind a token a test can override: the clock,
 * the process table (/proc), this host's identity, the DATA_DIR lock, the child ledger, the
 * tracker of plugin process trees (signals), and the spawner.
 */
export const PROCESS_PROVIDERS: Provider[] = [
  { provide: PROC_TABLE, useFactory: (): ProcTable => new LinuxProcTable() },
  {
    provide: HOST_PROCESS,
    inject: [PROC_TABLE],
    useFactory: (table: ProcTable): HostProcess => readHostProcess(table),
  },
  {
    provide: DATA_DIR_LOCK,
    inject: [PorticoConfig, HOST_PROCESS, CLOCK, PROC_TABLE],
    useFactory: (
      config: PorticoConfig,
      self: HostProcess,
      clock: Clock,
      table: ProcTable,
    ): DataDirLock => new FileDataDirLock(config.DATA_DIR, self, clock, runningIn(table)),
  },
  {
    provide: CHILD_LEDGER,
    inject: [PorticoConfig, PROC_TABLE, HOST_PROCESS],
    useFactory: (config: PorticoConfig, table: ProcTable, self: HostProcess): ChildLedger =>
      new FileChildLedger(join(config.DATA_DIR, CHILD_LEDGER_FILE), table, self),
  },
  {
    provide: PluginProcessTracker,
    inject: [PROC_TABLE, CLOCK, HOST_PROCESS],
    useFactory: (table: ProcTable, clock: Clock, self: HostProcess): PluginProcessTracker =>
      new PluginProcessTracker(
        table,
        (pid, signal) => process.kill(pid, signal),
        clock,
        (ms) => sleep(ms),
        self.pid,
      ),
  },
  { provide: PROCESS_SPAWNER, useClass: NodeProcessSpawner },
];
