import { hkdfSync } from 'node:crypto';

import type { PluginName } from '../shared/plugin.types';

const IDENTITY_SALT = 'portico/plugin-identity/v1';

/**
 * The per-plugin key plugins use to verify `x-plugin-user-signature` (docs/plugin-contract.md §5): HKDF of
 * the host key and the plugin name, so no plugin can derive another's key or the host key.
 */
export function derivePluginIdentitySecret(hostKey: Buffer, plugin: PluginName): string {
  return Buffer.from(hkdfSync('sha256', hostKey, IDENTITY_SALT, `plugin:${plugin}`, 32)).toString(
    'hex',
  );
}

/** The signing scheme, named in the signature value (`v2=<hex>`) so a plugin can tell. */
export const IDENTITY_SCHEME = 'v2';
/** First field of every signed message: binds a signature to this use and scheme. */
export const IDENTITY_CONTEXT = 'portico-identity/v2';

/**
 * The message an identity signature covers: every field as a netstring (`<UTF-8 byte
 * length>:<value>,`), so no choice of values can shift a boundary between fields. Fields:
 * context, plugin, id, name, the number of roles, each role, iat, exp.
 */
export function identityMessage(
  plugin: string,
  fields: {
    id: string;
    name: string;
    roles: readonly string[];
    iat: string;
    exp: string;
  },
): string {
  const { id, name, roles, iat, exp } = fields;
  return [IDENTITY_CONTEXT, plugin, id, name, String(roles.length), ...roles, iat, exp]
    .map((field) => `${Buffer.byteLength(field, 'utf8')}:${field},`)
    .join('');
}
