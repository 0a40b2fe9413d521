import { ApiClient, describeError } from './api-client';
import { h } from './dom';
import { LogView } from './log-view';
import { displayName, PluginStore } from './plugin-store';
import { setStatusBadge, statusBadge } from './status-badge';
import type { LogLine, PluginView, SecretView } from './types';

/** How many lines of output the dialog asks for when it opens. */
const INITIAL_LOG_LINES = 200;

interface SecretRow {
  readonly row: HTMLElement;
  readonly state: HTMLElement;
  readonly input: HTMLInputElement;
  readonly remove: HTMLButtonElement;
}

/**
 * An admin's controls for one plugin, in a modal dialog (Escape closes it): enable/disable,
 * restart, access roles, secrets (write-only: values are never shown) and the output tail.
 * Every action reports its result, or the API's refusal, in the dialog's result line.
 */
export class AdminDialog {
  public readonly element: HTMLDialogElement;
  private name: string | null = null;
  private opener: HTMLElement | null = null;
  private result!: HTMLElement;
  private statusBadge!: HTMLElement;
  private facts!: HTMLElement;
  private toggle!: HTMLButtonElement;
  private restart!: HTMLButtonElement;
  private roles!: HTMLInputElement;
  private rolesDirty = false;
  private secrets = new Map<string, SecretRow>();
  private logs!: LogView;
  /** Live lines that arrive while the initial tail is being fetched. */
  private pendingLogs: LogLine[] | null = null;

  public constructor(
    private readonly api: ApiClient,
    private readonly store: PluginStore,
  ) {
    this.element = h('dialog', {
      class: 'admin-dialog',
      'data-testid': 'admin-dialog',
      'aria-labelledby': 'admin-dialog-title',
    });
    this.element.addEventListener('close', () => this.closed());
  }

  public get openFor(): string | null {
    return this.name;
  }

  public open(name: string, opener: HTMLElement | null): void {
    const plugin = this.store.get(name);
    if (plugin === undefined) return;
    if (this.element.open) this.element.close();
    this.name = name;
    this.opener = opener;
    this.render(plugin);
    this.element.showModal();
    this.loadLogs();
  }

  public close(): void {
    if (this.element.open) this.element.close();
  }

  /** A newer view of a plugin (events or a refresh): updates the dialog in place if it shows it. */
  public update(plugin: PluginView): void {
    if (plugin.name !== this.name || !this.element.open) return;
    this.renderFacts(plugin);
    if (!this.rolesDirty) this.roles.value = plugin.access.roles.join(', ');
    for (const secret of plugin.secrets) {
      const row = this.secrets.get(secret.key);
      if (row !== undefined) renderSecretState(row, secret);
    }
  }

  /** The plugin shown was removed. */
  public removed(name: string): void {
    if (name === this.name) this.close();
  }

  /** A live `log` event. */
  public log(name: string, line: LogLine): void {
    if (name !== this.name || !this.element.open) return;
    if (this.pendingLogs !== null) this.pendingLogs.push(line);
    else this.logs.append([line]);
  }

  /** The server skipped output lines while this console was behind: say so in the tail. */
  public logsDropped(count: number): void {
    if (!this.element.open || this.pendingLogs !== null) return;
    const noun = count === 1 ? 'line was' : 'lines were';
    this.logs.append([
      {
        time: Date.now(),
        stream: 'portico',
        line: `(${count} output ${noun} skipped: the console fell behind)`,
      },
    ]);
  }

  private render(plugin: PluginView): void {
    const title = displayName(plugin);
    const close = h(
      'button',
      { type: 'button', class: 'quiet', 'data-action': 'close-dialog', 'aria-label': 'Close' },
      'Close',
    );
    close.addEventListener('click', () => this.close());

    this.statusBadge = statusBadge(plugin.status);
    this.facts = h('dl', { class: 'facts' });
    this.toggle = h('button', { type: 'button' });
    this.toggle.addEventListener('click', () => {
      const enable = this.toggle.dataset.action === 'enable';
      this.run(this.toggle, enable ? 'enable' : 'disable', async (n) => {
        this.store.update(await this.api.setEnabled(n, enable));
        return `${this.title} is ${enable ? 'enabled' : 'disabled'}.`;
      });
    });
    this.restart = h('button', { type: 'button', 'data-action': 'restart' }, 'Restart');
    this.restart.addEventListener('click', () =>
      this.run(this.restart, 'restart', async (n) => {
        this.store.update(await this.api.restart(n));
        return `${this.title} is restarting.`;
      }),
    );
    this.result = h('p', {
      class: 'admin-result',
      role: 'status',
      'aria-live': 'polite',
      'data-testid': 'admin-result',
    });
    this.logs = new LogView(`Output of ${title}`);
    const reloadLogs = h(
      'button',
      { type: 'button', class: 'quiet', 'data-action': 'reload-logs' },
      'Refresh',
    );
    reloadLogs.addEventListener('click', () => this.loadLogs());

    this.element.replaceChildren(
      h(
        'div',
        { class: 'dialog-head' },
        h('h2', { id: 'admin-dialog-title' }, `Manage ${title}`),
        this.statusBadge,
        close,
      ),
      h(
        'div',
        { class: 'dialog-body' },
        this.facts,
        h('div', { class: 'actions' }, this.toggle, this.restart),
        this.result,
        this.renderAccess(plugin),
        this.renderSecrets(plugin),
        h(
          'section',
          { class: 'admin-section', 'aria-labelledby': 'admin-logs-title' },
          h(
            'div',
            { class: 'section-head' },
            h('h3', { id: 'admin-logs-title' }, 'Output'),
            reloadLogs,
          ),
          this.logs.element,
        ),
      ),
    );
    this.renderFacts(plugin);
  }

  private renderFacts(plugin: PluginView): void {
    setStatusBadge(this.statusBadge, plugin.status);
    const rows: [string, string][] = [
      ['Name', plugin.name],
      ['Enabled', plugin.enabled ? 'yes' : 'no'],
      ['Restarts', String(plugin.restarts)],
    ];
    if (plugin.version !== undefined) rows.push(['Version', plugin.version]);
    if (plugin.invalidReason !== undefined) rows.push(['Invalid', plugin.invalidReason]);
    if (plugin.lastError !== undefined) rows.push(['Last error', plugin.lastError]);
    this.facts.replaceChildren(
      ...rows.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
    );
    this.toggle.dataset.action = plugin.enabled ? 'disable' : 'enable';
    this.toggle.textContent = plugin.enabled ? 'Disable' : 'Enable';
  }

  private renderAccess(plugin: PluginView): HTMLElement {
    this.rolesDirty = false;
    this.roles = h('input', {
      id: 'admin-access-roles',
      type: 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'every user',
      'data-testid': 'access-roles',
    });
    this.roles.value = plugin.access.roles.join(', ');
    this.roles.addEventListener('input', () => (this.rolesDirty = true));
    const save = h('button', { type: 'submit', 'data-action': 'save-access' }, 'Save roles');
    const form = h(
      'form',
      { class: 'inline-form' },
      h('label', { for: 'admin-access-roles' }, 'Roles allowed (comma-separated)'),
      h('div', { class: 'field-row' }, this.roles, save),
      h(
        'p',
        { class: 'hint' },
        'Any one of the roles gives access. Empty: every user. Admins always have access.',
      ),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const roles = parseRoles(this.roles.value);
      this.run(save, 'change access of', async (n) => {
        const view = await this.api.setAccess(n, roles);
        this.rolesDirty = false;
        this.store.update(view);
        return roles.length === 0
          ? `${this.title} is open to every user.`
          : `${this.title} is limited to: ${roles.join(', ')}.`;
      });
    });
    return h(
      'section',
      { class: 'admin-section', 'aria-labelledby': 'admin-access-title' },
      h('h3', { id: 'admin-access-title' }, 'Access'),
      form,
    );
  }

  private renderSecrets(plugin: PluginView): HTMLElement {
    this.secrets = new Map();
    const section = h(
      'section',
      { class: 'admin-section', 'aria-labelledby': 'admin-secrets-title' },
      h('h3', { id: 'admin-secrets-title' }, 'Secrets'),
    );
    if (plugin.secrets.length === 0) {
      section.append(h('p', { class: 'hint' }, 'This plugin declares no secrets.'));
      return section;
    }
    section.append(
      h(
        'p',
        { class: 'hint' },
        'Values are write-only: they are never shown. Saving or deleting one restarts the plugin.',
      ),
    );
    plugin.secrets.forEach((secret, index) => {
      const row = this.secretRow(secret, `admin-secret-${index}`);
      this.secrets.set(secret.key, row);
      section.append(row.row);
    });
    return section;
  }

  private secretRow(secret: SecretView, id: string): SecretRow {
    const state = h('span', { class: 'secret-state', 'data-testid': 'secret-state' });
    const input = h('input', {
      id,
      type: 'password',
      autocomplete: 'new-password',
      spellcheck: 'false',
      placeholder: 'New value',
      'data-testid': 'secret-input',
    });
    const save = h('button', { type: 'submit', 'data-action': 'set-secret' }, 'Save');
    const remove = h('button', { type: 'button', 'data-action': 'delete-secret' }, 'Delete');
    const form = h(
      'form',
      { class: 'secret-row', 'data-secret': secret.key },
      h(
        'div',
        { class: 'secret-head' },
        h('code', {}, secret.key),
        secret.required ? h('span', { class: 'tag' }, 'required') : null,
        state,
      ),
      h('label', { for: id, class: 'visually-hidden' }, `New value for ${secret.key}`),
      h('div', { class: 'field-row' }, input, save, remove),
    );
    const row: SecretRow = { row: form, state, input, remove };
    renderSecretState(row, secret);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = input.value;
      if (value === '') {
        this.report(`Type a value for ${secret.key} first.`, 'error');
        input.focus();
        return;
      }
      this.run(save, `save ${secret.key} for`, async (n) => {
        await this.api.setSecret(n, secret.key, value);
        input.value = '';
        await this.refresh(n);
        return `${secret.key} is saved; ${this.title} restarts to use it.`;
      });
    });
    remove.addEventListener('click', () =>
      this.run(remove, `delete ${secret.key} of`, async (n) => {
        await this.api.deleteSecret(n, secret.key);
        await this.refresh(n);
        return `${secret.key} is deleted; ${this.title} restarts without it.`;
      }),
    );
    return row;
  }

  /**
   * Runs one action: the button is disabled meanwhile, and the result line says how it went.
   * `verb` completes "Could not … <plugin>".
   */
  private run(
    button: HTMLButtonElement,
    verb: string,
    action: (name: string) => Promise<string>,
  ): void {
    const name = this.name;
    if (name === null) return;
    const title = this.title;
    button.disabled = true;
    this.report('Working…', 'info');
    action(name)
      .then(
        (done) => {
          if (this.name === name) this.report(done, 'success');
        },
        (error: unknown) => {
          if (this.name === name)
            this.report(`Could not ${verb} ${title}: ${describeError(error)}`, 'error');
        },
      )
      .finally(() => {
        button.disabled = false;
        // Re-applies states the button depends on (Delete stays off for an unset secret).
        const plugin = this.store.get(name);
        if (plugin !== undefined) this.update(plugin);
      });
  }

  private report(text: string, kind: 'info' | 'success' | 'error'): void {
    this.result.textContent = text;
    this.result.dataset.kind = kind;
  }

  /** Refreshes the plugin after an action whose answer carries no view (secrets: 204). */
  private async refresh(name: string): Promise<void> {
    try {
      this.store.update(await this.api.plugin(name));
    } catch {
      // The events socket brings the change too; the action itself succeeded.
    }
  }

  private loadLogs(): void {
    const name = this.name;
    if (name === null) return;
    this.pendingLogs = [];
    this.logs.showNote('Loading output…');
    this.api.logs(name, INITIAL_LOG_LINES).then(
      (lines) => {
        if (this.name !== name) return;
        this.logs.reset(lines);
        if (lines.length === 0) this.logs.showNote('No output yet.');
        const seen = new Set(lines.map(logKey));
        const newest = this.logs.newest;
        const later = (this.pendingLogs ?? []).filter(
          (l) => l.time > newest || (l.time === newest && !seen.has(logKey(l))),
        );
        this.pendingLogs = null;
        if (later.length > 0) {
          if (lines.length === 0) this.logs.reset(later);
          else this.logs.append(later);
        }
      },
      (error: unknown) => {
        if (this.name !== name) return;
        this.pendingLogs = null;
        this.logs.showNote(`The output could not be loaded: ${describeError(error)}`);
      },
    );
  }

  private closed(): void {
    this.name = null;
    this.pendingLogs = null;
    this.element.replaceChildren();
    const opener = this.opener;
    this.opener = null;
    if (opener?.isConnected === true) opener.focus();
  }

  private get title(): string {
    const plugin = this.name === null ? undefined : this.store.get(this.name);
    return plugin === undefined ? (this.name ?? '') : displayName(plugin);
  }
}

function renderSecretState(row: SecretRow, secret: SecretView): void {
  const from =
    secret.source === 'file' ? ' (mounted file)' : secret.source === 'store' ? ' (stored)' : '';
  row.state.textContent = secret.set ? `set${from}` : 'not set';
  row.state.dataset.set = String(secret.set);
  row.row.dataset.set = String(secret.set);
  // A mounted file can only be changed where it is mounted; an unset key has nothing to delete.
  row.remove.disabled = !secret.set || secret.source === 'file';
}

/** "admin, ops" → ["admin", "ops"]: trimmed, empties and repeats dropped. */
export function parseRoles(text: string): string[] {
  return [
    ...new Set(
      text
        .split(',')
        .map((r) => r.trim())
        .filter((r) => r !== ''),
    ),
  ];
}

function logKey(line: LogLine): string {
  return `${line.time}|${line.stream}|${line.line}`;
}
