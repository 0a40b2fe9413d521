import { stripTokenQuery } from '../../auth/credential-extractor';

/** Where the plugin API lives: `/api/plugins/<name>/…` (docs/plugin-contract.md §3). */
export const PLUGINS_API = 'api/plugins';
/** The RPC route under PLUGINS_API, as Nest (path-to-regexp 8) spells it. */
export const RPC_ROUTE = ':name/rpc{/*path}';

/** `/api/plugins/<name>/rpc[/<path>][?<query>]`, exactly as the route is spelled (case matters). */
const RPC_TARGET = new RegExp(`^/${PLUGINS_API}/([^/?#]+)/rpc(/[^?#]*)?(\\?[^#]*)?(?:#.*)?$`);
/** The scheme and authority of an absolute-form request target (RFC 9112 §3.2.2). */
const ABSOLUTE_FORM = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/;

/**
 * The request target to send to a plugin for an RPC request, from the raw target the client
 * sent (origin-form or absolute-form): the part after `/rpc`, or `/`, with every `token` query
 * parameter removed. Undefined when the target is not an RPC route of plugin `name` as the
 * contract spells it (e.g. `/RPC/`, another plugin's name), so routing and forwarding can never
 * disagree about which plugin and which path a request is for.
 */
export function rpcUpstreamPath(rawTarget: string, name: string): string | undefined {
  const target = rawTarget.replace(ABSOLUTE_FORM, '');
  const match = RPC_TARGET.exec(target.length === 0 ? '/' : target);
  if (match === null) return undefined;
  let segment: string;
  try {
    segment = decodeURIComponent(match[1] ?? '');
  } catch {
    return undefined;
  }
  if (segment !== name) return undefined;
  return (match[2] ?? '/') + stripTokenQuery(match[3] ?? '');
}

/** True for any plugin's RPC route as the contract spells it (whose bodies stream through). */
export function isRpcPath(path: string): boolean {
  return RPC_TARGET.test(path);
}

/** The base URL of a plugin's RPC route, as the API tells clients (`/api/plugins/<name>/rpc/`). */
export function rpcBaseUrl(name: string): string {
  return `/${PLUGINS_API}/${name}/rpc/`;
}
