import type { ManifestDto } from './manifest/manifest.dto';
import type { PluginDescriptor } from './manifest/plugin-descriptor';
import { rpcBaseUrl } from './proxy/rpc-path';
import type { SecretView } from './secrets/secret-view';
import type { PluginStatus } from './shared/plugin.types';

/** A plugin as the API lists it: manifest fields plus host state, never a secret value. */
export interface PluginView {
  readonly name: string;
  readonly folder: string;
  readonly displayName?: string;
  readonly version?: string;
  readonly description?: string;
  readonly author?: string;
  readonly icon?: string;
  readonly type?: string;
  readonly slot?: string;
  readonly permissions?: string[];
  readonly entry?: string;
  readonly hasServer: boolean;
  readonly enabled: boolean;
  readonly status: PluginStatus;
  readonly restarts: number;
  readonly lastError?: string;
  readonly invalidReason?: string;
  readonly secrets: SecretView[];
  /** Where a web app finds the plugin: its frontend entry, its WebSocket and RPC base paths. */
  readonly urls: { readonly entry?: string; readonly ws: string; readonly rpc: string };
  /** Roles the plugin is restricted to (empty = every user) and whether the caller may use it. */
  readonly access: { readonly roles: readonly string[]; readonly allowed: boolean };
}

const PASSED_THROUGH = [
  'displayName',
  'version',
  'description',
  'author',
  'icon',
  'type',
  'slot',
  'permissions',
  'entry',
] as const satisfies readonly (keyof ManifestDto)[];

export function toPluginView(
  descriptor: PluginDescriptor,
  state: {
    status: PluginStatus;
    restarts: number;
    lastError?: string;
    allowed: boolean;
    secrets?: SecretView[];
  },
): PluginView {
  const manifest = descriptor.manifest;
  const fields: Record<string, unknown> = {};
  for (const key of PASSED_THROUGH) {
    if (manifest?.[key] !== undefined) fields[key] = manifest[key];
  }
  return {
    name: descriptor.name,
    folder: descriptor.folder,
    ...fields,
    hasServer: manifest?.server !== undefined,
    enabled: descriptor.enabled,
    status: state.status,
    restarts: state.restarts,
    ...(state.lastError !== undefined ? { lastError: state.lastError } : {}),
    ...(descriptor.invalidReason !== undefined ? { invalidReason: descriptor.invalidReason } : {}),
    secrets:
      state.secrets ??
      (manifest?.secrets ?? []).map((s) => ({
        key: s.key,
        required: s.required === true,
        set: false,
        source: null,
      })),
    urls: {
      ...(manifest?.entry !== undefined
        ? { entry: `/api/plugins/${descriptor.name}/assets/${manifest.entry}` }
        : {}),
      ws: `/plugin-ws/${descriptor.name}`,
      rpc: rpcBaseUrl(descriptor.name),
    },
    access: { roles: descriptor.accessRoles, allowed: state.allowed },
  };
}
