import 'reflect-metadata';

import { ConfigException } from './config/config.exception';
import { loadConfig } from './config/load-config';
import { PorticoConfig } from './config/portico-config';
import { createApp } from './bootstrap';
import { tuneHeap } from './runtime/heap-tuning';

async function main(): Promise<void> {
  tuneHeap();
  let config: PorticoConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigException) {
      process.stderr.write(`portico: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const app = await createApp(config);
  await app.listen(config.PORT, config.HOST);
}

void main();
