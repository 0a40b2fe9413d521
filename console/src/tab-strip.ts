import { h } from './dom';
import { PluginTab, PluginTabOptions } from './plugin-tab';
import type { PluginView } from './types';

/**
 * The open plugins: a WAI-ARIA tab list (arrow keys, Home/End move between tabs, Delete closes
 * one) over their panels. Hidden panels stay in the page, so switching never remounts a plugin.
 */
export class TabStrip {
  public readonly element: HTMLElement;
  private readonly tablist: HTMLElement;
  private readonly panels: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly tabs = new Map<string, PluginTab>();
  private active: string | null = null;

  /**
   * `changed` runs after every open, close and switch; `focusLost` when the tab that had the
   * keyboard focus closed and no tab is left to take it.
   */
  public constructor(
    private readonly options: Omit<PluginTabOptions, 'requestClose'>,
    private readonly changed: (active: string | null, count: number) => void,
    private readonly focusLost: (closed: string) => void,
  ) {
    this.tablist = h('div', {
      role: 'tablist',
      'aria-label': 'Open plugins',
      class: 'tablist',
      'data-testid': 'tablist',
    });
    this.tablist.addEventListener('keydown', (event) => this.onKeydown(event));
    this.tablist.addEventListener('click', (event) => {
      const tab = (event.target as Element).closest<HTMLElement>('[role="tab"]');
      const name = tab?.dataset.plugin;
      if (name !== undefined) this.activate(name, false);
    });
    this.empty = h(
      'div',
      { class: 'empty-state', 'data-testid': 'no-tabs' },
      h('p', {}, 'No plugin is open.'),
      h('p', { class: 'hint' }, 'Choose one from the list of plugins to open it here.'),
    );
    this.panels = h('div', { class: 'panels' }, this.empty);
    this.element = h(
      'section',
      { class: 'workspace', 'aria-label': 'Plugin workspace' },
      this.tablist,
      this.panels,
    );
    this.tablist.hidden = true; // no tab yet; refresh() keeps both in line from here on
  }

  public get activeName(): string | null {
    return this.active;
  }

  public get(name: string): PluginTab | undefined {
    return this.tabs.get(name);
  }

  /** Opens a plugin's tab, or brings its open tab forward. */
  public open(view: PluginView, focus = true): PluginTab {
    let tab = this.tabs.get(view.name);
    if (tab === undefined) {
      tab = new PluginTab(view, { ...this.options, requestClose: (n) => this.close(n) });
      this.tabs.set(view.name, tab);
      this.tablist.appendChild(tab.tabItem);
      this.panels.appendChild(tab.panel);
    }
    this.activate(view.name, focus);
    this.refresh();
    return tab;
  }

  public update(view: PluginView): void {
    this.tabs.get(view.name)?.update(view);
  }

  /** Closes a tab (its plugin is unmounted); the neighbour becomes active. */
  public close(name: string): void {
    const tab = this.tabs.get(name);
    if (tab === undefined) return;
    const order = [...this.tabs.keys()];
    const index = order.indexOf(name);
    const hadFocus =
      tab.tabItem.contains(document.activeElement) || tab.panel.contains(document.activeElement);
    tab.close();
    tab.tabItem.remove();
    tab.panel.remove();
    this.tabs.delete(name);
    if (this.active === name) {
      this.active = null;
      const next = order[index + 1] ?? order[index - 1];
      if (next !== undefined) this.activate(next, hadFocus);
      else if (hadFocus) this.focusLost(name);
    }
    this.refresh();
  }

  public closeAll(): void {
    for (const name of [...this.tabs.keys()]) this.close(name);
  }

  private activate(name: string, focus: boolean): void {
    const target = this.tabs.get(name);
    if (target === undefined) return;
    for (const tab of this.tabs.values()) tab.setActive(tab === target);
    target.tab.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    if (focus) target.tab.focus();
    this.active = name;
    this.refresh();
  }

  private onKeydown(event: KeyboardEvent): void {
    const current = (event.target as Element).closest<HTMLElement>('[role="tab"]')?.dataset.plugin;
    if (current === undefined) return;
    const order = [...this.tabs.keys()];
    const index = order.indexOf(current);
    let next: string | undefined;
    switch (event.key) {
      case 'ArrowRight':
        next = order[(index + 1) % order.length];
        break;
      case 'ArrowLeft':
        next = order[(index - 1 + order.length) % order.length];
        break;
      case 'Home':
        next = order[0];
        break;
      case 'End':
        next = order[order.length - 1];
        break;
      case 'Delete':
        event.preventDefault();
        this.close(current);
        return;
      default:
        return;
    }
    event.preventDefault();
    if (next !== undefined) this.activate(next, true);
  }

  private refresh(): void {
    this.empty.hidden = this.tabs.size > 0;
    this.tablist.hidden = this.tabs.size === 0;
    this.changed(this.active, this.tabs.size);
  }
}
