import { pluginPath } from './api-client';
import type { ContextStore } from './context-store';
import { readToken } from './token-store';
import type { PluginContext } from './types';

/**
 * The object a plugin frontend's `mount(container, api)` gets: exactly `context`,
 * `onContextChange` and `rpc`, as CloudCLI gives it (nothing Portico-specific, so plugins
 * written for CloudCLI run unmodified).
 */
export interface PluginApi {
  readonly context: PluginContext;
  onContextChange(callback: (context: PluginContext) => void): () => void;
  rpc(method: string, path: string, body?: unknown): Promise<unknown>;
}

export interface PluginApiOptions {
  readonly name: string;
  readonly context: ContextStore;
  /** Unsubscribers of this mount's callbacks, all called when the tab is unmounted. */
  readonly subscriptions: Set<() => void>;
  /** A 401 from an RPC call: the plugin's own answer or an expired session; the caller checks. */
  readonly onUnauthorized: () => void;
}

export function createPluginApi(options: PluginApiOptions): PluginApi {
  const { name, context, subscriptions } = options;
  return {
    get context(): PluginContext {
      return context.snapshot;
    },
    onContextChange(callback: (context: PluginContext) => void): () => void {
      if (typeof callback !== 'function') throw new TypeError('onContextChange needs a function');
      const remove = context.subscribe(callback);
      const unsubscribe = (): void => {
        remove();
        subscriptions.delete(unsubscribe);
      };
      subscriptions.add(unsubscribe);
      return unsubscribe;
    },
    async rpc(method: string, path: string, body?: unknown): Promise<unknown> {
      const headers: Record<string, string> = {};
      const token = readToken();
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const url = `${pluginPath(name)}/rpc/${String(path).replace(/^\/+/, '')}`;
      const response = await fetch(url, {
        method: String(method).toUpperCase(),
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
      if (!response.ok) {
        if (response.status === 401) options.onUnauthorized();
        throw new Error(`RPC error ${response.status}`);
      }
      const text = await response.text();
      return text === '' ? null : (JSON.parse(text) as unknown);
    },
  };
}
