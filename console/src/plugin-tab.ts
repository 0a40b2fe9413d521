import { describeError } from './api-client';
import { describeClose } from './close-codes';
import type { ContextStore } from './context-store';
import { h, shorten } from './dom';
import { createPluginApi } from './plugin-api';
import { loadPluginModule, MountedPlugin, mountPlugin, unmountPlugin } from './plugin-loader';
import { displayName, isMountable, notMountableReason, statusSentence } from './plugin-store';
import { setStatusBadge, statusBadge } from './status-badge';
import type { PluginView } from './types';

export interface PluginTabOptions {
  readonly context: ContextStore;
  /** The asset request got 401: the session is over. */
  readonly sessionExpired: () => void;
  /** An RPC call got 401: the plugin's answer or an expired session; the console checks which. */
  readonly checkSession: () => void;
  /** The user asked to close this tab. */
  readonly requestClose: (name: string) => void;
}

/** waiting: not mountable yet (status shown); loading; mounted; failed: load error shown. */
export type TabState = 'waiting' | 'loading' | 'mounted' | 'failed' | 'closed';

let nextId = 0;

/**
 * One plugin's tab and panel. The frontend is mounted once, into a container that stays in the
 * page while the tab is hidden (a terminal keeps its session), and unmounted with that same
 * container when the tab closes. A plugin that is not running shows why and mounts once it runs.
 */
export class PluginTab {
  public readonly tab: HTMLButtonElement;
  /** The tab with its close button, as placed in the tab list. */
  public readonly tabItem: HTMLElement;
  public readonly panel: HTMLElement;
  private readonly container: HTMLElement;
  private readonly label: HTMLElement;
  private readonly dot: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly description: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly retry: HTMLButtonElement;
  private readonly reload: HTMLButtonElement;
  private state: TabState = 'waiting';
  /** Bumped by every load and by close, so a load that finishes late knows it is stale. */
  private generation = 0;
  private mounted: MountedPlugin | null = null;
  private readonly subscriptions = new Set<() => void>();
  private loadError: string | null = null;
  private socketMessage: string | null = null;

  public constructor(
    private view: PluginView,
    private readonly options: PluginTabOptions,
  ) {
    const id = `plugin-${++nextId}`;
    const name = view.name;
    this.dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
    this.label = h('span', { class: 'tab-label' });
    this.tab = h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `${id}-tab`,
        'aria-controls': `${id}-panel`,
        'aria-selected': 'false',
        tabindex: -1,
        'data-testid': 'tab',
        'data-plugin': name,
      },
      this.dot,
      this.label,
    );
    // Mouse only: keyboard users close with Delete on the tab or the panel's Close button,
    // so the tab list holds nothing but tabs for assistive technology.
    const closeX = h(
      'button',
      {
        type: 'button',
        class: 'tab-close',
        tabindex: -1,
        'aria-hidden': 'true',
        title: `Close ${displayName(view)}`,
        'data-action': 'close-tab-x',
        'data-plugin': name,
      },
      '×',
    );
    closeX.addEventListener('click', () => options.requestClose(name));
    this.tabItem = h('div', { class: 'tab-item', role: 'presentation' }, this.tab, closeX);

    this.heading = h('h2', { class: 'panel-title' });
    this.badge = statusBadge(view.status);
    this.description = h('p', { class: 'panel-description' });
    this.retry = h(
      'button',
      { type: 'button', hidden: true, 'data-action': 'retry-load' },
      'Try again',
    );
    // A load failure is already shown in the panel; load() catches everything.
    this.retry.addEventListener('click', () => void this.load());
    this.reload = h(
      'button',
      { type: 'button', hidden: true, 'data-action': 'reload-tab' },
      'Reload',
    );
    this.reload.addEventListener('click', () => this.remount());
    const close = h('button', { type: 'button', 'data-action': 'close-tab' }, 'Close tab');
    close.addEventListener('click', () => options.requestClose(name));
    this.notice = h('div', {
      class: 'notice',
      role: 'status',
      'aria-live': 'polite',
      'data-testid': 'tab-notice',
      hidden: true,
    });
    this.container = h('div', { class: 'plugin-container', 'data-plugin-container': name });
    this.panel = h(
      'section',
      {
        role: 'tabpanel',
        id: `${id}-panel`,
        'aria-labelledby': `${id}-tab`,
        class: 'tab-panel',
        hidden: true,
        'data-testid': 'tab-panel',
        'data-plugin': name,
      },
      h(
        'div',
        { class: 'panel-bar' },
        h('div', { class: 'panel-heading' }, this.heading, this.badge),
        this.description,
        h('div', { class: 'panel-actions' }, this.retry, this.reload, close),
      ),
      this.notice,
      this.container,
    );
    this.update(view);
  }

  public get name(): string {
    return this.view.name;
  }

  public get currentState(): TabState {
    return this.state;
  }

  /** A newer view of the plugin: labels follow; a waiting frontend mounts once it can. */
  public update(view: PluginView): void {
    this.view = view;
    const title = displayName(view);
    this.label.textContent = title;
    this.heading.textContent = title;
    this.dot.className = `dot status-dot-${view.status}`;
    this.tab.title = `${title}: ${view.status}`;
    setStatusBadge(this.badge, view.status);
    this.description.textContent =
      view.description === undefined ? '' : shorten(view.description, 160);
    this.description.hidden = view.description === undefined;
    // load() reports its own failures in the panel.
    if (this.state === 'waiting' && isMountable(view)) void this.load();
    else this.render();
  }

  public setActive(active: boolean): void {
    this.tab.setAttribute('aria-selected', String(active));
    this.tab.tabIndex = active ? 0 : -1;
    this.tab.classList.toggle('active', active);
    this.tabItem.classList.toggle('active', active);
    this.panel.hidden = !active;
  }

  /** The plugin's own WebSocket opened: a previous close message no longer applies. */
  public socketOpened(): void {
    if (this.socketMessage === null) return;
    this.socketMessage = null;
    this.render();
  }

  /** The plugin's own WebSocket closed: says why and whether it comes back (close-codes.ts). */
  public socketClosed(code: number, reason: string): void {
    if (this.state !== 'mounted') return;
    this.socketMessage =
      code === 1000
        ? null
        : describeClose(code, reason, `${displayName(this.view)}’s connection`, true);
    this.render();
  }

  /** Unmounts the frontend (same container it was mounted in) and drops its context callbacks. */
  public close(): void {
    this.state = 'closed';
    this.takeDown();
  }

  /**
   * Unmounts and mounts again, on the user's request: for a plugin whose page does not
   * reconnect by itself after a restart. Waits (as a new tab would) if it is not running.
   */
  private remount(): void {
    this.takeDown();
    this.socketMessage = null;
    this.container.replaceChildren();
    this.state = 'waiting';
    if (isMountable(this.view))
      void this.load(); // load() reports its own failures
    else this.render();
  }

  private takeDown(): void {
    this.generation += 1;
    const mounted = this.mounted;
    this.mounted = null;
    if (mounted !== null) unmountPlugin(mounted, this.container);
    this.dropSubscriptions();
  }

  private async load(): Promise<void> {
    const generation = ++this.generation;
    const entry = this.view.entry;
    if (entry === undefined) return;
    this.state = 'loading';
    this.loadError = null;
    this.container.replaceChildren();
    this.render();
    try {
      const module = await loadPluginModule(this.name, entry, this.options.sessionExpired);
      if (generation !== this.generation) return;
      const api = createPluginApi({
        name: this.name,
        context: this.options.context,
        subscriptions: this.subscriptions,
        onUnauthorized: this.options.checkSession,
      });
      const mounted = await mountPlugin(module, this.container, api);
      if (generation !== this.generation) {
        unmountPlugin(mounted, this.container); // closed while an async mount ran
        return;
      }
      this.mounted = mounted;
      this.state = 'mounted';
    } catch (error) {
      if (generation !== this.generation) return;
      this.dropSubscriptions();
      this.container.replaceChildren();
      this.state = 'failed';
      this.loadError = describeError(error);
      console.error(`Plugin ${this.name} failed to load`, error);
    }
    this.render();
  }

  private render(): void {
    this.panel.dataset.state = this.state;
    this.retry.hidden = this.state !== 'failed';
    this.reload.hidden = this.state !== 'mounted';
    const [text, kind] = this.noticeFor();
    this.notice.hidden = text === null;
    this.notice.textContent = text ?? '';
    this.notice.dataset.kind = kind;
  }

  private noticeFor(): [string | null, 'info' | 'warning' | 'error'] {
    const view = this.view;
    switch (this.state) {
      case 'failed':
        return [`Plugin failed to load: ${this.loadError ?? 'unknown error'}`, 'error'];
      case 'loading':
        return [`Loading ${displayName(view)}…`, 'info'];
      case 'waiting':
        return [notMountableReason(view), waitingTone(view)];
      case 'mounted':
        if (view.hasServer && view.status !== 'running') {
          const error = view.lastError === undefined ? '' : ` Last error: ${view.lastError}`;
          return [`${statusSentence(view).replace(/;.*$/, '.')}${error}`, 'warning'];
        }
        return [this.socketMessage, 'warning'];
      default:
        return [null, 'info'];
    }
  }

  private dropSubscriptions(): void {
    for (const unsubscribe of [...this.subscriptions]) unsubscribe();
    this.subscriptions.clear();
  }
}

/** A broken plugin reads as an error, one with nothing to show as plain information. */
function waitingTone(view: PluginView): 'info' | 'warning' | 'error' {
  if (view.status === 'failed' || view.status === 'invalid') return 'error';
  return view.entry === undefined ? 'info' : 'warning';
}
