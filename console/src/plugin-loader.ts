import { ApiError, pluginPath } from './api-client';
import type { PluginApi } from './plugin-api';
import { readToken } from './token-store';

/** A plugin frontend's module: CloudCLI's `mount(container, api)` and `unmount(container)`. */
export interface PluginModule {
  mount(container: HTMLElement, api: PluginApi): unknown;
  unmount?(container: HTMLElement): unknown;
}

/** A mounted frontend: how to take it down again. */
export interface MountedPlugin {
  readonly module: PluginModule;
  /** What `mount` returned when it was a function (some plugins clean up that way). */
  readonly cleanup?: () => unknown;
}

/**
 * Loads a frontend the CloudCLI way: the entry is fetched with the bearer token (a module
 * script cannot send one), imported from a Blob URL, so it must be one self-contained bundle.
 */
export async function loadPluginModule(
  name: string,
  entry: string,
  onUnauthorized: () => void,
): Promise<PluginModule> {
  const headers: Record<string, string> = {};
  const token = readToken();
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${pluginPath(name)}/assets/${encodeURIComponent(entry)}`, {
    headers,
    credentials: 'same-origin',
  });
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, `its entry ${entry} could not be fetched`);
  }
  const source = await response.text();
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  let loaded: unknown;
  try {
    loaded = await import(/* @vite-ignore */ url);
  } finally {
    URL.revokeObjectURL(url); // the module is evaluated; nothing fetches the URL again
  }
  if (!isPluginModule(loaded)) throw new Error(`its entry ${entry} does not export mount()`);
  return loaded;
}

/** Calls `mount` and waits for it when it is asynchronous. */
export async function mountPlugin(
  module: PluginModule,
  container: HTMLElement,
  api: PluginApi,
): Promise<MountedPlugin> {
  const result: unknown = await module.mount(container, api);
  return typeof result === 'function' ? { module, cleanup: result as () => unknown } : { module };
}

/**
 * Takes a frontend down with the container it was mounted in: its `unmount(container)`, or
 * failing that the function `mount` returned. A plugin's error here is reported, not thrown:
 * the tab closes either way.
 */
export function unmountPlugin(mounted: MountedPlugin, container: HTMLElement): void {
  try {
    if (typeof mounted.module.unmount === 'function') {
      const result: unknown = mounted.module.unmount(container);
      if (result instanceof Promise) result.catch(reportUnmountError);
    } else {
      mounted.cleanup?.();
    }
  } catch (error) {
    reportUnmountError(error);
  }
}

function reportUnmountError(error: unknown): void {
  console.error('A plugin’s unmount failed', error);
}

function isPluginModule(value: unknown): value is PluginModule {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { mount?: unknown }).mount === 'function'
  );
}
