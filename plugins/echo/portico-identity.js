'use strict';
// Verifies the identity headers Portico adds to every proxied request and WebSocket handshake.
// Self-contained (Node's crypto only): copy this file into your own plugin.
//
//   const { verifyIdentity } = require('./portico-identity');
//   const user = verifyIdentity(req.headers); // null unless Portico signed it for this plugin
//
// Signature: hex HMAC-SHA256(PLUGIN_IDENTITY_SECRET, `${plugin}\n${id}\n${name}\n${iat}`) over the
// percent-decoded header values. The key is derived for this plugin alone, so a signature made
// for (or by) another plugin never verifies here.
const { createHmac, timingSafeEqual } = require('node:crypto');

/**
 * @param {import('node:http').IncomingHttpHeaders} headers
 * @param {{ secret?: string, plugin?: string }} [options] defaults: PLUGIN_IDENTITY_SECRET, PLUGIN_NAME
 * @returns {{ id: string, name: string, roles: string[], iat: number } | null}
 */
function verifyIdentity(headers, options = {}) {
  const secret = options.secret ?? process.env.PLUGIN_IDENTITY_SECRET;
  const plugin = options.plugin ?? process.env.PLUGIN_NAME;
  const get = (name) => (typeof headers[name] === 'string' ? headers[name] : undefined);
  const [rawId, rawName, rawRoles, iat, signature] = [
    get('x-plugin-user-id'),
    get('x-plugin-user-name'),
    get('x-plugin-user-roles'),
    get('x-plugin-user-iat'),
    get('x-plugin-user-signature'),
  ];
  if (!secret || !plugin || rawId === undefined || rawName === undefined) return null;
  if (iat === undefined || signature === undefined || !/^[0-9a-f]{64}$/.test(signature)) return null;
  let id;
  let name;
  let roles;
  try {
    id = decodeURIComponent(rawId);
    name = decodeURIComponent(rawName);
    roles = (rawRoles ?? '').split(',').filter(Boolean).map(decodeURIComponent);
  } catch {
    return null;
  }
  const expected = createHmac('sha256', secret).update(`${plugin}\n${id}\n${name}\n${iat}`).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) return null;
  return { id, name, roles, iat: Number(iat) };
}

module.exports = { verifyIdentity };
