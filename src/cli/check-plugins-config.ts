import 'reflect-metadata';

import { readFileSync } from 'node:fs';

import { parsePluginsConfig } from '../plugins/manifest/plugins-config';

/**
 * `node dist/cli/check-plugins-config.js FILE` (or `npm run check-plugins-config -- FILE`):
 * validates a PLUGINS_CONFIG file exactly as the host does, before it is shipped, e.g. in the
 * pipeline that updates the ConfigMap. A pod that restarts while the ConfigMap holds an invalid
 * file cannot start (exit 78), so the check belongs before the apply, not after.
 * Exit 0 valid, 1 invalid, 2 usage.
 */
function main(args: readonly string[]): number {
  const file = args[0] ?? process.env.PLUGINS_CONFIG;
  if (file === undefined || args.length > 1 || file === '--help' || file === '-h') {
    process.stderr.write('usage: check-plugins-config FILE (default: $PLUGINS_CONFIG)\n');
    return 2;
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    process.stderr.write(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code})\n`);
    return 1;
  }
  const result = parsePluginsConfig(bytes);
  if ('error' in result) {
    process.stderr.write(`${file}: ${result.error}\n`);
    return 1;
  }
  const names = [...result.config.plugins.keys()].sort();
  process.stdout.write(
    `${file}: valid; generation ${result.config.generation}; ` +
      `${names.length} plugin(s)${names.length > 0 ? `: ${names.join(', ')}` : ''}\n`,
  );
  return 0;
}

process.exitCode = main(process.argv.slice(2));
