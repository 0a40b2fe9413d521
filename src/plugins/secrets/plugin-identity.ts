import { hkdfSync } from 'node:crypto';

import type { PluginName } from '../plugin.types';

const IDENTITY_SALT = 'portico/plugin-identity/v1';

/**
 * The per-plugin key plugins use to verify `x-plugin-user-signature` (CONTRACT.md §5): HKDF of
 * the host key and the plugin name, so no plugin can derive another's key or the host key.
 */
export function derivePluginIdentitySecret(hostKey: Buffer, plugin: PluginName): string {
  return Buffer.from(hkdfSync('sha256', hostKey, IDENTITY_SALT, `plugin:${plugin}`, 32)).toString(
    'hex',
  );
}
