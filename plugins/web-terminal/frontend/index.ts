/**
 * The Terminal tab: Portico's console imports this bundle (dist/index.js, built by build.js) and
 * calls `mount(container, api)`, later `unmount(container)` with the same container.
 */
import { TerminalView } from './terminal-view';
import type { PluginApi } from './types';

export type { TerminalHandle } from './terminal-view';
export type { ConnectionState, PluginApi, PluginContext } from './types';

const views = new WeakMap<HTMLElement, TerminalView>();

/** Opens a terminal filling `container`, connected to a new shell. */
export function mount(container: HTMLElement, api: PluginApi): void {
  views.get(container)?.dispose(); // mounted twice: the first terminal must not leak
  views.set(container, new TerminalView(container, api));
}

/** Closes the session and removes the terminal, its observers, timers and style sheet. */
export function unmount(container: HTMLElement): void {
  views.get(container)?.dispose();
  views.delete(container);
}
