'use strict';
// Verifies the identity headers Portico adds to every proxied request and WebSocket handshake.
// Self-contained (Node's crypto only): copy this file into your own plugin.
//
//   const { verifyIdentity } = require('./portico-identity');
//   const user = verifyIdentity(req.headers); // null unless Portico signed it for this plugin
//
// Scheme v2. Headers: x-plugin-user-id, -name (percent-encoded), -roles (comma-separated, each
// percent-encoded), -iat, -exp (seconds since the epoch) and x-plugin-user-signature =
// `v2=` + hex HMAC-SHA256(PLUGIN_IDENTITY_SECRET, message). The message is every field as a
// netstring `<UTF-8 byte length>:<value>,` in this order: "portico-identity/v2", plugin name,
// id, name, number of roles, each role, iat, exp (decoded values). Length prefixes mean no
// choice of values can move a field boundary; roles and the expiry are signed like the rest.
// The key is derived for this plugin alone, so a signature made for (or by) another plugin
// never verifies here. Any other signature format, including the retired v1 (a bare hex HMAC
// that left the roles out), is refused, and so is an identity past its expiry.
const { createHmac, timingSafeEqual } = require('node:crypto');

const SCHEME = 'v2';
const CONTEXT = 'portico-identity/v2';
/** Portico's own tolerance for token expiry, so every request it let through verifies. */
const DEFAULT_CLOCK_TOLERANCE_SEC = 30;

const netstring = (value) => `${Buffer.byteLength(value, 'utf8')}:${value},`;

/**
 * @param {import('node:http').IncomingHttpHeaders} headers
 * @param {{ secret?: string, plugin?: string, now?: number, clockToleranceSec?: number }} [options]
 *   defaults: PLUGIN_IDENTITY_SECRET, PLUGIN_NAME, Date.now() (milliseconds), 30
 * @returns {{ id: string, name: string, roles: string[], iat: number, exp: number } | null}
 */
function verifyIdentity(headers, options = {}) {
  const secret = options.secret ?? process.env.PLUGIN_IDENTITY_SECRET;
  const plugin = options.plugin ?? process.env.PLUGIN_NAME;
  const now = options.now ?? Date.now();
  const tolerance = options.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;
  const get = (name) => (typeof headers[name] === 'string' ? headers[name] : undefined);
  const [rawId, rawName, rawRoles, iat, exp, signature] = [
    get('x-plugin-user-id'),
    get('x-plugin-user-name'),
    get('x-plugin-user-roles'),
    get('x-plugin-user-iat'),
    get('x-plugin-user-exp'),
    get('x-plugin-user-signature'),
  ];
  if (!secret || !plugin || rawId === undefined || rawName === undefined) return null;
  if (rawRoles === undefined || iat === undefined || exp === undefined) return null;
  if (!/^\d{1,15}$/.test(iat) || !/^\d{1,15}$/.test(exp)) return null;
  const mac = new RegExp(`^${SCHEME}=([0-9a-f]{64})$`).exec(signature ?? '');
  if (!mac) return null;
  let id;
  let name;
  let roles;
  try {
    id = decodeURIComponent(rawId);
    name = decodeURIComponent(rawName);
    roles = rawRoles === '' ? [] : rawRoles.split(',').map(decodeURIComponent);
  } catch {
    return null;
  }
  const fields = [CONTEXT, plugin, id, name, String(roles.length), ...roles, iat, exp];
  const expected = createHmac('sha256', secret).update(fields.map(netstring).join('')).digest();
  if (!timingSafeEqual(expected, Buffer.from(mac[1], 'hex'))) return null;
  if (now > (Number(exp) + tolerance) * 1000) return null;
  return { id, name, roles, iat: Number(iat), exp: Number(exp) };
}

module.exports = { verifyIdentity };
