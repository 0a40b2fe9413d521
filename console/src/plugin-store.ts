import type { PluginView } from './types';

export type PluginChange =
  | { readonly kind: 'snapshot' }
  | { readonly kind: 'updated'; readonly plugin: PluginView }
  | { readonly kind: 'removed'; readonly name: string };

/**
 * The plugins as last reported, by name: fed by the events socket (snapshot, then changes) or by
 * `GET /api/plugins` when the socket is down, and read by the list, the tabs and the admin dialog.
 */
export class PluginStore {
  private readonly plugins = new Map<string, PluginView>();
  private readonly listeners = new Set<(change: PluginChange) => void>();

  /** Every plugin, in display order. */
  public list(): PluginView[] {
    return [...this.plugins.values()].sort((a, b) =>
      displayName(a).localeCompare(displayName(b), undefined, { sensitivity: 'base' }),
    );
  }

  public get(name: string): PluginView | undefined {
    return this.plugins.get(name);
  }

  /** Replaces everything: a snapshot, or a fresh `GET /api/plugins`. */
  public replace(plugins: readonly PluginView[]): void {
    const previous = new Set(this.plugins.keys());
    this.plugins.clear();
    for (const plugin of plugins) this.plugins.set(plugin.name, plugin);
    this.emit({ kind: 'snapshot' });
    for (const name of previous) if (!this.plugins.has(name)) this.emit({ kind: 'removed', name });
  }

  public update(plugin: PluginView): void {
    this.plugins.set(plugin.name, plugin);
    this.emit({ kind: 'updated', plugin });
  }

  public remove(name: string): void {
    if (this.plugins.delete(name)) this.emit({ kind: 'removed', name });
  }

  public subscribe(listener: (change: PluginChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: PluginChange): void {
    for (const listener of [...this.listeners]) listener(change);
  }
}

export function displayName(plugin: Pick<PluginView, 'name' | 'displayName'>): string {
  const display = plugin.displayName?.trim();
  return display === undefined || display === '' ? plugin.name : display;
}

/**
 * Whether a plugin's frontend can be mounted now: the user has access, and its server is running
 * (a plugin without a server is `stopped` for good, and its frontend works without one).
 */
export function isMountable(plugin: PluginView): boolean {
  if (plugin.entry === undefined || !plugin.access.allowed) return false;
  if (plugin.status === 'running') return true;
  return !plugin.hasServer && plugin.enabled && plugin.status === 'stopped';
}

/** Why a plugin's frontend is not mounted, in a sentence (null when it can be). */
export function notMountableReason(plugin: PluginView): string | null {
  const name = displayName(plugin);
  if (plugin.status === 'invalid') {
    return `${name} is invalid: ${plugin.invalidReason ?? 'its manifest broke a rule'}.`;
  }
  if (plugin.entry === undefined) return `${name} has no frontend to show.`;
  if (!plugin.access.allowed) return `You do not have access to ${name}.`;
  if (isMountable(plugin)) return null;
  const status = statusSentence(plugin);
  const error = plugin.lastError === undefined ? '' : ` Last error: ${plugin.lastError}`;
  return `${status}${error}`;
}

/** The status as a sentence, saying when the frontend will appear. */
export function statusSentence(plugin: PluginView): string {
  const name = displayName(plugin);
  switch (plugin.status) {
    case 'running':
      return `${name} is running.`;
    case 'starting':
      return `${name} is starting; it opens here once it is running.`;
    case 'restarting':
      return `${name} is restarting; it opens here once it is running again.`;
    case 'disabled':
      return `${name} is disabled; it opens here if an administrator enables it.`;
    case 'failed':
      return `${name} has failed; it opens here once it is running again.`;
    case 'stopped':
      return `${name} is stopped; it opens here once it is running.`;
    case 'invalid':
      return `${name} is invalid.`;
    default:
      return `${name} is ${plugin.status}; it opens here once it is running.`;
  }
}
