import { pluginPath } from './api-client';
import { h, shorten } from './dom';
import { displayName, PluginStore } from './plugin-store';
import { setStatusBadge, statusBadge } from './status-badge';
import type { PluginView } from './types';

export interface PluginListOptions {
  /** The user picked a plugin: open (or bring forward) its tab. */
  open(name: string): void;
  /** An admin asked for a plugin's controls; `opener` gets the focus back afterwards. */
  manage(name: string, opener: HTMLElement): void;
}

interface Item {
  readonly li: HTMLLIElement;
  readonly open: HTMLButtonElement;
  readonly title: HTMLElement;
  readonly badge: HTMLElement;
  readonly meta: HTMLElement;
  readonly error: HTMLElement;
  readonly manage: HTMLButtonElement;
  icon: string | undefined;
}

/** Longest error shown in the list; the whole text is in the tab and the admin dialog. */
const SHORT_ERROR_CHARS = 90;

/**
 * Every plugin with its live status, enabled flag and a short error. Items are updated in place
 * (keyed by name), so a status change never takes the keyboard focus away.
 */
export class PluginList {
  public readonly element: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly placeholder: HTMLElement;
  private readonly items = new Map<string, Item>();
  private admin = false;
  private current: string | null = null;

  public constructor(
    private readonly store: PluginStore,
    private readonly options: PluginListOptions,
  ) {
    this.list = h('ul', { class: 'plugin-list', 'data-testid': 'plugin-list' });
    this.placeholder = h('p', { class: 'hint list-placeholder' }, 'Loading plugins…');
    this.element = h(
      'nav',
      { id: 'plugin-nav', class: 'sidebar', 'aria-labelledby': 'plugin-nav-title' },
      h('h2', { id: 'plugin-nav-title', class: 'sidebar-title' }, 'Plugins'),
      this.placeholder,
      this.list,
    );
  }

  public setAdmin(admin: boolean): void {
    this.admin = admin;
    for (const item of this.items.values()) item.manage.hidden = !admin;
  }

  /** Marks the plugin whose tab is showing. */
  public setCurrent(name: string | null): void {
    this.current = name;
    for (const [itemName, item] of this.items) {
      if (itemName === name) item.open.setAttribute('aria-current', 'true');
      else item.open.removeAttribute('aria-current');
    }
  }

  /** Brings the list in line with the store. */
  public render(): void {
    const plugins = this.store.list();
    const names = new Set(plugins.map((p) => p.name));
    for (const [name, item] of this.items) {
      if (!names.has(name)) {
        item.li.remove();
        this.items.delete(name);
      }
    }
    plugins.forEach((plugin, index) => {
      const item = this.items.get(plugin.name) ?? this.create(plugin.name);
      this.fill(item, plugin);
      if (this.list.children[index] !== item.li)
        this.list.insertBefore(item.li, this.list.children[index] ?? null);
    });
    this.placeholder.hidden = plugins.length > 0;
    this.placeholder.textContent = 'No plugins are installed.';
    this.setCurrent(this.current);
  }

  /** Focuses a plugin's entry (after its tab closed, so the keyboard user is not lost). */
  public focus(name: string): void {
    this.items.get(name)?.open.focus();
  }

  private create(name: string): Item {
    const title = h('span', { class: 'plugin-name' });
    const badge = statusBadge('stopped');
    const meta = h('span', { class: 'plugin-meta' });
    const error = h('span', { class: 'plugin-error' });
    const open = h(
      'button',
      { type: 'button', class: 'plugin-open', 'data-testid': 'plugin-open' },
      h('span', { class: 'plugin-line' }, title, badge),
      meta,
      error,
    );
    open.addEventListener('click', () => this.options.open(name));
    const manage = h(
      'button',
      {
        type: 'button',
        class: 'plugin-manage quiet',
        'data-action': 'manage',
        hidden: !this.admin,
      },
      'Manage',
    );
    manage.addEventListener('click', () => this.options.manage(name, manage));
    const li = h(
      'li',
      { class: 'plugin-item', 'data-testid': 'plugin-item', 'data-plugin': name },
      open,
      manage,
    );
    const item: Item = { li, open, title, badge, meta, error, manage, icon: undefined };
    this.items.set(name, item);
    return item;
  }

  private fill(item: Item, plugin: PluginView): void {
    const name = displayName(plugin);
    item.li.dataset.status = plugin.status;
    item.li.dataset.enabled = String(plugin.enabled);
    item.title.textContent = name;
    item.manage.setAttribute('aria-label', `Manage ${name}`);
    setStatusBadge(item.badge, plugin.status);
    this.fillIcon(item, plugin);

    const meta = [plugin.enabled ? 'enabled' : 'disabled'];
    if (plugin.version !== undefined) meta.push(`v${plugin.version}`);
    if (plugin.entry === undefined) meta.push('no frontend');
    if (!plugin.hasServer && plugin.status !== 'invalid') meta.push('no server');
    if (!plugin.access.allowed) meta.push('no access');
    item.meta.textContent = meta.join(' · ');

    const error = plugin.invalidReason ?? plugin.lastError;
    item.error.hidden = error === undefined;
    item.error.textContent = error === undefined ? '' : shorten(error, SHORT_ERROR_CHARS);
    if (error === undefined) item.open.removeAttribute('title');
    else item.open.title = error;
  }

  /** A manifest `icon` naming an image file in the plugin folder (the cookie authenticates it). */
  private fillIcon(item: Item, plugin: PluginView): void {
    const icon =
      plugin.icon !== undefined &&
      /^[\w./-]+\.(svg|png|gif|jpe?g|webp)$/i.test(plugin.icon) &&
      !plugin.icon.includes('..')
        ? plugin.icon
        : undefined;
    if (icon === item.icon) return;
    item.icon = icon;
    item.open.querySelector('.plugin-icon')?.remove();
    if (icon === undefined) return;
    const img = h('img', {
      class: 'plugin-icon',
      alt: '',
      width: 20,
      height: 20,
      src: `${pluginPath(plugin.name)}/assets/${icon.split('/').map(encodeURIComponent).join('/')}`,
    });
    img.addEventListener('error', () => img.remove());
    item.title.before(img);
  }
}
