import 'reflect-metadata';

import { INestApplication, Logger } from '@nestjs/common';

import { ConfigException } from './config/config.exception';
import { loadConfig } from './config/load-config';
import { PorticoConfig } from './config/portico-config';
import { createApp } from './bootstrap';
import { listen, logListenBacklog } from './http/listen';
import { readOpenFileLimit } from './http/open-file-limit';
import { DATA_DIR_LOCKED_EXIT_CODE, DataDirLockedError } from './plugins/process/data-dir-lock';
import { tuneHeap } from './runtime/heap-tuning';

async function main(): Promise<void> {
  tuneHeap();
  let config: PorticoConfig;
  let app: INestApplication;
  try {
    config = loadConfig();
    // Providers read configured files too (PLUGINS_CONFIG): their errors are config errors.
    app = await createApp(config);
  } catch (err) {
    if (err instanceof ConfigException) {
      process.stderr.write(`portico: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  logOpenFileLimit(new Logger('Runtime'));
  logListenBacklog(config, new Logger('Runtime'));
  try {
    await listen(app, config);
  } catch (err) {
    // Plugins may already run (the port was taken after bootstrap): stop them, release the lock.
    await app.close().catch(() => undefined);
    if (err instanceof DataDirLockedError) {
      process.stderr.write(`portico: ${err.message}\n`);
      process.exit(DATA_DIR_LOCKED_EXIT_CODE);
    }
    throw err;
  }
}

/** Below this many file descriptors a few hundred WebSockets (two sockets each) exhaust them. */
const FEW_FILE_DESCRIPTORS = 4096;

/**
 * Node has already raised the soft open-file limit to the hard one; the hard limit is up to the
 * service manager (systemd `LimitNOFILE=`, Docker `--ulimit nofile=`). Logged so it is known.
 */
function logOpenFileLimit(logger: Logger): void {
  const limit = readOpenFileLimit();
  if (limit === undefined) return;
  const shown = (n: number): number | string => (Number.isFinite(n) ? n : 'unlimited');
  const line = { event: 'open_file_limit', soft: shown(limit.soft), hard: shown(limit.hard) };
  if (limit.soft < FEW_FILE_DESCRIPTORS)
    logger.warn({ ...line, hint: 'raise the hard limit (LimitNOFILE, ulimit -Hn)' });
  else logger.log(line);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `portico: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
