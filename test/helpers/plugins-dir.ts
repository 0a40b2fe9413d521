import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BUNDLED_PLUGINS, FIXTURE_PLUGINS } from './test-app';

/**
 * A temporary PLUGINS_DIR holding links to the named fixture plugins (or `bundled:<name>` for a
 * plugin under plugins/), so a test starts only the servers it needs. Links keep each plugin's
 * real location, so `require('ws')` and `../_lib` resolve as usual.
 */
export function pluginsDirWith(names: string[]): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'portico-plugins-'));
  for (const name of names) {
    const bundled = name.startsWith('bundled:');
    const folder = bundled ? name.slice('bundled:'.length) : name;
    symlinkSync(join(bundled ? BUNDLED_PLUGINS : FIXTURE_PLUGINS, folder), join(dir, folder));
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
