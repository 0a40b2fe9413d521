import { AdminDialog } from './admin-dialog';
import { ApiClient, describeError } from './api-client';
import { ContextStore } from './context-store';
import { h } from './dom';
import { EventsSocket, LiveState } from './events-socket';
import type { MessageArea } from './message-area';
import { PluginList } from './plugin-list';
import { PluginChange, PluginStore } from './plugin-store';
import { ProjectPicker } from './project-picker';
import type { PluginSocketEvent } from './socket-observer';
import { TabStrip } from './tab-strip';
import { applyTheme, saveTheme } from './theme';
import type { Me, ServerEvent, Theme } from './types';

export interface ConsoleViewOptions {
  readonly me: Me;
  readonly theme: Theme;
  readonly messages: MessageArea;
  readonly signOut: () => void;
  /** A 401 anywhere: back to sign-in. */
  readonly sessionExpired: () => void;
  /**
   * A socket was closed with 4401 and no newer token is stored: get one (single sign-on).
   * Resolves false when there is none to be had (the session is over).
   */
  readonly renewToken: () => Promise<boolean>;
}

const LIVE_LABELS: Record<LiveState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
};

/**
 * The signed-in console: top bar (live indicator, project, theme, sign out), the plugin list,
 * the plugin tabs and, for admins, the manage dialog. `destroy` takes all of it down, every
 * plugin unmounted and the events socket closed.
 */
export class ConsoleView {
  public readonly element: HTMLElement;
  private readonly api: ApiClient;
  private readonly store = new PluginStore();
  private readonly context: ContextStore;
  private readonly list: PluginList;
  private readonly tabs: TabStrip;
  private readonly dialog: AdminDialog;
  private readonly events: EventsSocket;
  private readonly projects: ProjectPicker;
  private readonly live: HTMLElement;
  private readonly liveText: HTMLElement;
  private readonly menuToggle: HTMLButtonElement;
  private readonly themeToggle: HTMLButtonElement;
  private readonly userLabel: HTMLElement;
  private readonly signOutButton: HTMLButtonElement;
  private readonly shell: HTMLElement;
  private me: Me;
  private theme: Theme;
  private liveDetail: string | null = null;
  private checkingSession = false;
  private readonly unsubscribe: () => void;
  private readonly onKeydown = (event: KeyboardEvent): void => {
    if (event.key === 'Escape' && this.menuOpen) {
      this.setMenu(false);
      this.menuToggle.focus();
    }
  };

  public constructor(private readonly options: ConsoleViewOptions) {
    this.me = options.me;
    this.theme = options.theme;
    this.api = new ApiClient(options.sessionExpired);
    this.context = new ContextStore(options.theme);
    this.dialog = new AdminDialog(this.api, this.store);
    this.tabs = new TabStrip(
      {
        context: this.context,
        sessionExpired: options.sessionExpired,
        checkSession: () => this.checkSession(),
      },
      (active, count) => {
        this.list.setCurrent(active);
        // styles.css: on a phone the list stacks while no tab is open, else it is a menu.
        this.shell.dataset.tabs = String(count);
      },
      (closed) => this.list.focus(closed),
    );
    this.list = new PluginList(this.store, {
      open: (name) => this.openPlugin(name),
      manage: (name, opener) => this.dialog.open(name, opener),
    });
    this.list.setAdmin(this.me.admin);
    this.projects = new ProjectPicker(this.api, this.context);

    this.menuToggle = h(
      'button',
      {
        type: 'button',
        class: 'menu-toggle',
        'aria-controls': 'plugin-nav',
        'aria-expanded': 'false',
        'data-testid': 'menu-toggle',
      },
      'Plugins',
    );
    this.menuToggle.addEventListener('click', () => this.setMenu(!this.menuOpen));
    this.liveText = h('span', { class: 'live-text' }, LIVE_LABELS.connecting);
    this.live = h(
      'span',
      { class: 'live', 'data-testid': 'live-indicator', 'data-state': 'connecting' },
      h('span', { class: 'live-dot', 'aria-hidden': 'true' }),
      this.liveText,
    );
    this.themeToggle = h('button', { type: 'button', 'data-testid': 'theme-toggle' }, 'Dark theme');
    this.themeToggle.addEventListener('click', () =>
      this.setTheme(this.theme === 'dark' ? 'light' : 'dark'),
    );
    this.userLabel = h('span', { class: 'user', 'data-testid': 'user' });
    this.signOutButton = h('button', { type: 'button', 'data-testid': 'sign-out' }, 'Sign out');
    this.signOutButton.addEventListener('click', () => options.signOut());

    const topbar = h(
      'header',
      { class: 'topbar' },
      h(
        'div',
        { class: 'topbar-main' },
        this.menuToggle,
        h('span', { class: 'brand' }, 'Portico'),
        this.live,
      ),
      h(
        'div',
        { class: 'topbar-tools' },
        this.projects.element,
        this.themeToggle,
        this.userLabel,
        this.signOutButton,
      ),
    );
    this.shell = h(
      'div',
      { class: 'shell', 'data-tabs': '0' },
      topbar,
      options.messages.element,
      h(
        'div',
        { class: 'body' },
        this.list.element,
        h('main', { class: 'main' }, this.tabs.element),
      ),
    );
    this.element = h('div', { class: 'console' }, this.shell, this.dialog.element);
    this.renderUser();
    this.renderTheme();

    this.unsubscribe = this.store.subscribe((change) => this.onPluginChange(change));
    this.events = new EventsSocket({
      event: (event) => this.onEvent(event),
      state: (state, detail) => this.onLiveState(state, detail),
      notOpened: () => void this.refreshPlugins(), // reports its own failure
      expired: options.sessionExpired,
      renew: options.renewToken,
    });
  }

  public start(): void {
    document.addEventListener('keydown', this.onKeydown);
    this.events.start();
    void this.projects.load(); // falls back to "No project" on any failure
  }

  /** Signs the view out of everything: sockets closed, plugins unmounted, dialog closed. */
  public destroy(): void {
    document.removeEventListener('keydown', this.onKeydown);
    this.events.stop();
    this.unsubscribe();
    this.dialog.close();
    this.tabs.closeAll();
    this.options.messages.element.remove();
  }

  /** A plugin frontend's own socket opened or closed (socket-observer.ts). */
  public pluginSocket(event: PluginSocketEvent): void {
    const tab = this.tabs.get(event.plugin);
    if (tab === undefined) return;
    if (event.type === 'open') tab.socketOpened();
    else tab.socketClosed(event.code, event.reason);
  }

  private get menuOpen(): boolean {
    return this.menuToggle.getAttribute('aria-expanded') === 'true';
  }

  private setMenu(open: boolean): void {
    this.menuToggle.setAttribute('aria-expanded', String(open));
    this.shell.classList.toggle('menu-open', open);
  }

  private openPlugin(name: string): void {
    const plugin = this.store.get(name);
    if (plugin === undefined) return;
    this.setMenu(false);
    this.tabs.open(plugin);
  }

  private onEvent(event: ServerEvent): void {
    switch (event.type) {
      case 'hello':
        this.me = event.user;
        this.list.setAdmin(this.me.admin);
        if (!this.me.admin) this.dialog.close();
        this.renderUser();
        break;
      case 'plugins':
        this.store.replace(event.plugins);
        break;
      case 'plugin':
        this.store.update(event.plugin);
        break;
      case 'removed':
        this.store.remove(event.name);
        break;
      case 'log':
        this.dialog.log(event.name, {
          time: Date.parse(event.at),
          stream: event.stream,
          line: event.line,
        });
        break;
      case 'logs-dropped':
        this.dialog.logsDropped(event.count);
        break;
    }
  }

  private onPluginChange(change: PluginChange): void {
    this.list.render();
    if (change.kind === 'removed') {
      if (this.tabs.get(change.name) !== undefined) {
        this.tabs.close(change.name);
        this.options.messages.show(`The plugin ${change.name} was removed, so its tab was closed.`);
      }
      this.dialog.removed(change.name);
      return;
    }
    const plugins = change.kind === 'updated' ? [change.plugin] : this.store.list();
    for (const plugin of plugins) {
      this.tabs.update(plugin);
      this.dialog.update(plugin);
    }
  }

  private onLiveState(state: LiveState, detail?: string): void {
    this.live.dataset.state = state;
    this.liveText.textContent = LIVE_LABELS[state];
    if (state === 'live') {
      this.live.removeAttribute('title');
      if (this.liveDetail !== null) this.options.messages.clear(this.liveDetail);
      this.liveDetail = null;
      return;
    }
    if (detail === undefined || detail === this.liveDetail) return;
    this.live.title = detail;
    this.liveDetail = detail;
    this.options.messages.show(detail, 'info');
  }

  /** The fallback while the events socket is down: the list from `GET /api/plugins`. */
  private async refreshPlugins(): Promise<void> {
    try {
      this.store.replace(await this.api.plugins());
    } catch (error) {
      // A 401 already sent the user to sign-in; anything else waits for the next attempt.
      if (this.store.list().length === 0) {
        this.options.messages.show(
          `The plugin list could not be loaded: ${describeError(error)}`,
          'error',
        );
      }
    }
  }

  /** A plugin's RPC got 401: `GET /api/me` tells an expired session (401 → sign-in) apart. */
  private checkSession(): void {
    if (this.checkingSession) return;
    this.checkingSession = true;
    this.api
      .me()
      .catch(() => undefined)
      .finally(() => {
        this.checkingSession = false;
      });
  }

  private setTheme(theme: Theme): void {
    this.theme = theme;
    applyTheme(theme);
    saveTheme(theme);
    this.context.setTheme(theme);
    this.renderTheme();
  }

  private renderTheme(): void {
    this.themeToggle.setAttribute('aria-pressed', String(this.theme === 'dark'));
  }

  private renderUser(): void {
    const who = this.me.name !== undefined && this.me.name !== '' ? this.me.name : this.me.id;
    this.userLabel.textContent = this.me.admin ? `${who} (admin)` : who;
    this.signOutButton.title = `Signed in as ${who}`;
  }
}
