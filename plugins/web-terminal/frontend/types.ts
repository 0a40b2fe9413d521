/** What the console passes to `mount` (the CloudCLI plugin contract). */
export type ThemeName = 'light' | 'dark';

export interface PluginContext {
  readonly theme: ThemeName;
  readonly project: { readonly name: string; readonly path: string } | null;
  readonly session: unknown;
}

export interface PluginApi {
  /** The current context; a getter, so it is read again whenever it is needed. */
  readonly context: PluginContext;
  /** Calls `listener` when the theme or project changes; returns the unsubscribe function. */
  onContextChange(listener: (context: PluginContext) => void): () => void;
  rpc(method: string, path: string, body?: unknown): Promise<unknown>;
}

/** `data-terminal-state` on the container: what the terminal's connection is doing. */
export type ConnectionState = 'connecting' | 'open' | 'closed';
