import { ADMIN_ROLE, Principal } from '../../auth/principal';
import type { PluginDescriptor } from '../manifest/plugin-descriptor';
import { PluginException, PluginExceptionCode } from './plugin.exception';

/**
 * Whether a user may use a plugin (assets, RPC, WebSocket): unrestricted plugins are open to
 * every user; restricted ones need one of their roles. Admins manage every plugin, so they
 * always pass.
 */
export function canAccess(descriptor: PluginDescriptor, user: Principal | undefined): boolean {
  if (descriptor.accessRoles.length === 0) return true;
  const roles = user?.roles ?? [];
  return roles.includes(ADMIN_ROLE) || descriptor.accessRoles.some((r) => roles.includes(r));
}

/** Throws PluginException FORBIDDEN (HTTP 403) when `canAccess` says no. */
export function assertAccess(descriptor: PluginDescriptor, user: Principal | undefined): void {
  if (canAccess(descriptor, user)) return;
  throw new PluginException(
    PluginExceptionCode.FORBIDDEN,
    `plugin ${descriptor.name} requires one of the roles: ${descriptor.accessRoles.join(', ')}`,
  );
}
