import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

import { browserDescribe, launchChromium, waitForTerminalLine } from '../helpers/browser';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';

/** Every case leaves a screenshot here (ignored by git), to look at when one fails. */
const ARTIFACTS = resolve(__dirname, '../../test-artifacts/console');
/** `UPDATE_DOCS_SCREENSHOTS=1` also rewrites the README's pictures of the console. */
const DOCS = resolve(__dirname, '../../docs');
const UPDATE_DOCS = process.env.UPDATE_DOCS_SCREENSHOTS === '1';

/** Longest wait for any one thing in the page; each test has its own overall limit. */
const STEP_MS = 10_000;
const DESKTOP = { width: 1280, height: 800 };
const PLUGINS = ['echo', 'starter-like', 'web-terminal'];

/** The project folders PROJECTS_DIR holds: one with a few files, one empty. */
const PROJECT_FILES: Record<string, Record<string, string>> = {
  'acme-website': {
    'README.md': '# Acme website\n\nThe public site of Acme Corp.\n',
    'package.json': '{\n  "name": "acme-website",\n  "version": "2.3.0"\n}\n',
    'index.html': '<!doctype html>\n<title>Acme</title>\n',
    'src/app.ts': 'export const greeting = "Hello from Acme";\n',
  },
  'data-pipeline': {},
};
/** What starter-like's stats line must say for each project (top-level entries only). */
const PROJECT_STATS: Record<string, string> = {
  'acme-website': '4 entries (1 folders, 3 files)',
  'data-pipeline': '0 entries (0 folders, 0 files)',
};

/**
 * The web console (console/) in a real browser against the real host, with the bundled echo and
 * terminal plugins and a CloudCLI-starter-like plugin: sign-in, the live plugin list, plugin tabs,
 * the terminal (typing, resizing, a restart), projects as plugin context, the admin/non-admin
 * split, a phone-sized screen and the keyboard.
 */
browserDescribe('the web console in a browser (Chromium)', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let projectsDir: string;
  let projectPath: Record<string, string>;
  let browser: Browser;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    projectsDir = mkdtempSync(join(tmpdir(), 'portico-projects-'));
    projectPath = {};
    for (const [project, files] of Object.entries(PROJECT_FILES)) {
      const folder = join(projectsDir, project);
      mkdirSync(folder);
      for (const [file, content] of Object.entries(files)) {
        mkdirSync(join(folder, file, '..'), { recursive: true });
        writeFileSync(join(folder, file), content);
      }
      projectPath[project] = realpathSync(folder); // what /api/projects reports
    }
    plugins = pluginsDirWith(['bundled:echo', 'bundled:web-terminal', 'starter-like']);
    t = await startTestApp({ pluginsDir: plugins.dir, env: { PROJECTS_DIR: projectsDir } });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    plugins?.remove();
    if (projectsDir !== undefined) rmSync(projectsDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await context?.close();
    context = undefined;
  });

  /** A new browser profile (nothing stored), light theme, of the given size. */
  async function newPage(options: BrowserContextOptions = {}): Promise<Page> {
    context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', ...options });
    context.setDefaultTimeout(STEP_MS);
    return context.newPage();
  }

  /** Signs in the way a person does: pastes the token, presses the button, waits for "Live". */
  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${t.baseUrl}/`);
    await page.locator('[data-testid=sign-in-token]').fill(token);
    await page.locator('[data-testid=sign-in-submit]').click();
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor();
  }

  const item = (page: Page, name: string) =>
    page.locator(`[data-testid=plugin-item][data-plugin="${name}"]`);

  /** Opens a plugin's tab from the list and waits until its frontend is mounted. */
  async function openTab(page: Page, name: string): Promise<void> {
    await item(page, name).locator('[data-testid=plugin-open]').click();
    await panel(page, name, 'mounted').waitFor();
  }

  const panel = (page: Page, name: string, state?: string) =>
    page.locator(
      `[data-testid=tab-panel][data-plugin="${name}"]${state === undefined ? '' : `[data-state="${state}"]`}`,
    );

  const shot = async (page: Page, file: string): Promise<void> => {
    await page.screenshot({ path: join(ARTIFACTS, file) });
  };

  /** Clicks into the terminal (xterm's hidden textarea takes the keys) and checks it has them. */
  async function focusTerminal(page: Page): Promise<void> {
    await page.locator('[data-plugin-container=web-terminal] .xterm-screen').click();
    const focused = await page.evaluate(
      () =>
        (globalThis as unknown as PageGlobals).document.activeElement?.classList.contains(
          'xterm-helper-textarea',
        ) ?? false,
    );
    expect(focused).toBe(true);
  }

  /** Opens the terminal tab and waits for its shell. */
  async function openTerminal(page: Page): Promise<void> {
    await openTab(page, 'web-terminal');
    await page.locator('[data-plugin-container=web-terminal][data-terminal-state=open]').waitFor();
    await focusTerminal(page);
  }

  /** Types a command into the focused terminal, key by key, and presses Enter. */
  async function run(page: Page, command: string): Promise<void> {
    await page.keyboard.type(command);
    await page.keyboard.press('Enter');
  }

  const terminalText = (page: Page): Promise<string> =>
    page.evaluate(
      () => (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.text() ?? '',
    );

  const waitForLine = (page: Page, line: string): Promise<unknown> =>
    waitForTerminalLine(page, line, STEP_MS);

  /** `stty size` as the shell sees it, next to the size xterm.js has. */
  async function shellSize(page: Page): Promise<{ shell: string; xterm: string }> {
    const marker = `size-${randomBytes(3).toString('hex')}`;
    await run(page, `stty size | sed "s/^/${marker}=/"`);
    const pattern = new RegExp(`^${marker}=(\\d+ \\d+)$`, 'm');
    await page.waitForFunction(
      (source) =>
        new RegExp(source, 'm').test(
          (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.text() ?? '',
        ),
      pattern.source,
      { timeout: STEP_MS },
    );
    const shell = pattern.exec(await terminalText(page))?.[1] ?? '';
    const xterm = await page.evaluate(() => {
      const term = (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.terminal;
      return `${term?.rows} ${term?.cols}`;
    });
    return { shell, xterm };
  }

  /** How wide the page is, and what sticks out past `width` (scrolling containers aside). */
  const layout = (page: Page, width: number): Promise<{ scrollWidth: number; outside: string[] }> =>
    page.evaluate(`(${LAYOUT_CHECK})(${width})`);

  /** The `data-testid` (or tag) of the focused element. */
  const focusedTestId = (page: Page): Promise<string> =>
    page.evaluate(() => {
      const active = (globalThis as unknown as PageGlobals).document.activeElement;
      return active?.getAttribute('data-testid') ?? active?.tagName.toLowerCase() ?? 'none';
    });

  it('signs in with a pasted admin token and lists every plugin as running; refuses a bad token', async () => {
    const page = await newPage();
    await page.goto(`${t.baseUrl}/`);
    await shot(page, '1-sign-in.png');

    // A token whose signature was tampered with: the server's answer, in a plain sentence.
    const good = t.adminToken();
    const forged = `${good.slice(0, -4)}${good.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    await page.locator('[data-testid=sign-in-token]').fill(forged);
    await page.locator('[data-testid=sign-in-submit]').click();
    const message = page.locator('[data-testid=message]');
    await message.filter({ hasText: 'That token was refused' }).waitFor();
    const refusal = (await message.textContent()) ?? '';
    expect(refusal).toMatch(/^That token was refused: [^{}<>\n]+\.$/);
    expect(refusal).not.toMatch(/undefined|null|\[object|Error:|HTTP \d/);
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as PageGlobals).localStorage.getItem('auth-token'),
      ),
    ).toBeNull();
    await shot(page, '1-refused.png');

    await page.locator('[data-testid=sign-in-token]').fill(good);
    await page.locator('[data-testid=sign-in-submit]').click();
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor();
    for (const name of PLUGINS)
      await item(page, name).and(page.locator('[data-status=running]')).waitFor();
    const listed = await page
      .locator('[data-testid=plugin-item]')
      .evaluateAll((items) => items.map((i) => i.getAttribute('data-plugin')));
    expect([...listed].sort()).toEqual(PLUGINS);
    expect(await page.locator('[data-testid=user]').textContent()).toBe('Root (admin)');
    // An admin's only controls while no tab is open: one Manage button per plugin.
    expect(await page.locator('[data-action]:visible').count()).toBe(PLUGINS.length);
    expect(await page.locator('[data-action=manage]:visible').count()).toBe(PLUGINS.length);
    expect(await message.isVisible()).toBe(false); // the refusal is gone once signed in
    await shot(page, '1-signed-in.png');
  }, 30_000);

  it('runs a command typed into the terminal tab', async () => {
    const page = await newPage();
    await signIn(page, t.adminToken());
    // With a project picked, the shell starts in its folder.
    await page.locator('[data-testid=project-select]').selectOption('acme-website');
    await openTerminal(page);

    const marker = `portico-${randomBytes(4).toString('hex')}`;
    await run(page, `echo ${marker}`);
    await waitForLine(page, marker);
    await shot(page, '2-terminal-echo.png');

    // A few everyday commands on a clean screen (the picture in README.md).
    await run(page, 'clear');
    await page.waitForFunction(
      (m) =>
        !((globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.text() ?? '').includes(m),
      marker,
      { timeout: STEP_MS },
    );
    await run(page, 'pwd');
    await waitForLine(page, projectPath['acme-website']);
    await run(page, 'ls -F');
    await waitForLine(page, 'README.md  index.html  package.json  src/');
    await run(page, 'cat README.md');
    await waitForLine(page, 'The public site of Acme Corp.');
    await run(page, 'cat package.json');
    await waitForLine(page, '  "version": "2.3.0"');
    await shot(page, '2-terminal.png');
    if (UPDATE_DOCS) await page.screenshot({ path: join(DOCS, 'terminal.png') });
  }, 30_000);

  it('tells the shell the new size when the window is resized', async () => {
    const page = await newPage();
    await signIn(page, t.adminToken());
    await openTerminal(page);
    const before = await shellSize(page);
    expect(before.shell).toBe(before.xterm);

    await page.setViewportSize({ width: 900, height: 600 });
    await page.waitForFunction(
      (size) => {
        const term = (globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.terminal;
        return term !== undefined && `${term.rows} ${term.cols}` !== size;
      },
      before.xterm,
      { timeout: STEP_MS },
    );
    const after = await shellSize(page);
    expect(after.shell).toBe(after.xterm);
    const [rowsBefore, colsBefore] = before.shell.split(' ').map(Number);
    const [rowsAfter, colsAfter] = after.shell.split(' ').map(Number);
    expect(rowsAfter).toBeLessThan(rowsBefore);
    expect(colsAfter).toBeLessThan(colsBefore);
    await shot(page, '3-resized.png');
  }, 30_000);

  it('shows the restart in the terminal and reconnects to a new shell', async () => {
    const page = await newPage();
    await signIn(page, t.adminToken());
    await openTerminal(page);
    const first = `portico-${randomBytes(4).toString('hex')}`;
    await run(page, `echo ${first}`);
    await waitForLine(page, first);
    // Every close code and connection state the terminal goes through, and every notice the tab
    // shows, recorded as they happen (a reconnect may replace the 1012 before a poll sees it).
    await page.evaluate(RECORD_TERMINAL_CHANGES);

    await item(page, 'web-terminal').locator('[data-action=manage]').click();
    const dialog = page.locator('[data-testid=admin-dialog][open]');
    await dialog.locator('[data-action=restart]').click();
    await dialog
      .locator('[data-testid=admin-result]')
      .filter({ hasText: 'Terminal is restarting.' })
      .waitFor();
    await shot(page, '4-restart-requested.png');
    await dialog.locator('[data-action=close-dialog]').click();
    await dialog.waitFor({ state: 'detached' });

    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobals).__recorded?.codes.includes('1012') ?? false,
      undefined,
      { timeout: STEP_MS },
    );
    await waitForLine(page, '[reconnecting…]');
    // "open" alone may be a handshake Portico closes at once with 4503 while the plugin starts:
    // connected again means open with a new shell's prompt after the last notice.
    await page.waitForFunction(
      (notice) => {
        const terminal = (globalThis as unknown as PageGlobals).__porticoTerminals?.[0];
        const text = terminal?.text() ?? '';
        const at = text.lastIndexOf(notice);
        return (
          terminal?.state === 'open' && at >= 0 && text.slice(at + notice.length).trim() !== ''
        );
      },
      '[reconnecting…]',
      { timeout: STEP_MS },
    );
    expect(
      await page
        .locator('[data-plugin-container=web-terminal]')
        .getAttribute('data-terminal-state'),
    ).toBe('open');
    await item(page, 'web-terminal').and(page.locator('[data-status=running]')).waitFor();
    // The tab's "restarting" notice goes once the terminal is connected again.
    await panel(page, 'web-terminal')
      .locator('[data-testid=tab-notice]')
      .waitFor({ state: 'hidden' });
    const recorded = await page.evaluate(() => (globalThis as unknown as PageGlobals).__recorded);
    expect(recorded?.codes[0]).toBe('1012');
    expect(recorded?.states).toEqual(expect.arrayContaining(['closed', 'connecting', 'open']));
    expect(recorded?.notices.some((n) => /restart/i.test(n))).toBe(true);

    await focusTerminal(page);
    const second = `portico-${randomBytes(4).toString('hex')}`;
    await run(page, `echo ${second}`);
    await waitForLine(page, second);
    await shot(page, '4-reconnected.png');
  }, 45_000);

  it("gives plugins the picked project, follows a change, and does not forward the page's Origin", async () => {
    const page = await newPage();
    await signIn(page, t.adminToken());
    const select = page.locator('[data-testid=project-select]');
    await select.selectOption('acme-website');
    await openTab(page, 'starter-like');
    const container = page.locator('[data-plugin-container=starter-like]');
    const stats = container.locator('[data-stats=loaded]');

    await container.locator('h2', { hasText: 'Project: acme-website' }).waitFor();
    await stats.waitFor();
    expect(await stats.textContent()).toBe(
      `${PROJECT_STATS['acme-website']} in ${projectPath['acme-website']}`,
    );
    await shot(page, '5-project.png');

    await select.selectOption('data-pipeline');
    await container.locator('h2', { hasText: 'Project: data-pipeline' }).waitFor();
    await stats
      .filter({ hasText: `${PROJECT_STATS['data-pipeline']} in ${projectPath['data-pipeline']}` })
      .waitFor();

    // The page's own socket: only the cookie authenticates it, and the browser adds an Origin
    // that starter-like's server would refuse if Portico passed it on.
    const greeting = await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals;
      const ws = new g.WebSocket('/plugin-ws/starter-like');
      return new Promise<string>((done) => {
        const timer = setTimeout(() => done('timed out'), 5_000);
        ws.onmessage = (event) => {
          clearTimeout(timer);
          done(String(event.data));
          ws.close();
        };
        ws.onclose = (event) => {
          clearTimeout(timer);
          done(`closed ${event.code}`);
        };
      });
    });
    expect(greeting).toBe(JSON.stringify({ type: 'hello-from-starter' }));
    await shot(page, '5-project-changed.png');

    // Back to the first project, and a second tab: echo, answering what is typed into it.
    await select.selectOption('acme-website');
    await container.locator('h2', { hasText: 'Project: acme-website' }).waitFor();
    await openTab(page, 'echo');
    const echo = page.locator('[data-plugin-container=echo]');
    await echo.locator('pre', { hasText: 'connected' }).waitFor();
    await echo.locator('input[name=msg]').fill('Hello from the console');
    await echo.locator('input[name=msg]').press('Enter');
    await echo.locator('pre', { hasText: '< Hello from the console' }).waitFor();
    await shot(page, '5-two-tabs.png');
    if (UPDATE_DOCS) await page.screenshot({ path: join(DOCS, 'console.png') });
  }, 30_000);

  it('shows a user without the admin role no admin controls, and the API refuses them', async () => {
    const page = await newPage();
    const token = t.token({ sub: 'bob', name: 'Bob', roles: [] });
    await signIn(page, token);
    for (const name of PLUGINS) await item(page, name).waitFor();
    expect(await page.locator('[data-testid=user]').textContent()).toBe('Bob');
    expect(await page.locator('[data-action]:visible').count()).toBe(0);
    expect(await page.locator('[data-action=manage]').count()).toBe(PLUGINS.length); // all hidden
    await openTab(page, 'echo');
    expect(await page.locator('[data-action=restart], dialog[open]').count()).toBe(0);
    await shot(page, '6-non-admin.png');

    const status = await page.evaluate(async (bearer) => {
      const res = await fetch('/api/plugins/echo/restart', {
        method: 'POST',
        headers: { Authorization: `Bearer ${bearer}` },
      });
      return res.status;
    }, token);
    expect(status).toBe(403);
  }, 30_000);

  it('is usable on a phone: the list, its menu and a tab, without horizontal scrolling', async () => {
    const page = await newPage({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    });
    await page.goto(`${t.baseUrl}/`);
    expect(await layout(page, 390)).toEqual({ scrollWidth: 390, outside: [] });
    await signIn(page, t.adminToken());

    // No tab open: the list is the page, the menu button is not needed.
    const list = page.locator('#plugin-nav');
    const menu = page.locator('[data-testid=menu-toggle]');
    await item(page, 'echo').and(page.locator('[data-status=running]')).waitFor();
    expect(await list.isVisible()).toBe(true);
    expect(await menu.isVisible()).toBe(false);
    expect(await layout(page, 390)).toEqual({ scrollWidth: 390, outside: [] });
    await shot(page, '7-phone-list.png');

    await item(page, 'echo').locator('[data-testid=plugin-open]').tap();
    await panel(page, 'echo', 'mounted').waitFor();
    expect(await list.isVisible()).toBe(false);
    expect(await menu.isVisible()).toBe(true);
    expect(await layout(page, 390)).toEqual({ scrollWidth: 390, outside: [] });

    await menu.tap();
    expect(await menu.getAttribute('aria-expanded')).toBe('true');
    await list.waitFor({ state: 'visible' });
    await shot(page, '7-phone-menu.png');
    await item(page, 'starter-like').locator('[data-testid=plugin-open]').tap();
    await panel(page, 'starter-like', 'mounted').waitFor();
    await page.locator('[data-plugin-container=starter-like] [data-stats=loaded]').waitFor();
    expect(await menu.getAttribute('aria-expanded')).toBe('false');
    expect(await list.isVisible()).toBe(false);
    expect(await panel(page, 'starter-like').isVisible()).toBe(true);
    expect(await layout(page, 390)).toEqual({ scrollWidth: 390, outside: [] });
    await shot(page, '7-phone-tab.png');
  }, 30_000);

  it('can be used with the keyboard: Tab to sign in, arrow keys between tabs', async () => {
    const page = await newPage();
    await page.goto(`${t.baseUrl}/`);
    await page.locator('[data-testid=sign-in-token]').waitFor();
    // With nothing focused, Tab reaches the token field, and the button right after it.
    await page.evaluate(() =>
      (globalThis as unknown as PageGlobals).document.activeElement?.blur(),
    );
    const order: string[] = [];
    for (let i = 0; i < 10 && !order.includes('sign-in-token'); i++) {
      await page.keyboard.press('Tab');
      order.push(await focusedTestId(page));
    }
    // Only the field and the button are stops ("body": the focus left the page for a moment).
    expect(order).toContain('sign-in-token');
    expect(
      order.filter((stop) => !['sign-in-token', 'sign-in-submit', 'body'].includes(stop)),
    ).toEqual([]);
    await page.keyboard.insertText(t.adminToken()); // a paste
    await page.keyboard.press('Tab');
    expect(await focusedTestId(page)).toBe('sign-in-submit');
    await shot(page, '8-keyboard-sign-in.png');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor();

    // Two tabs opened from the list with the keyboard; the last opened one has the focus.
    for (const name of ['echo', 'starter-like']) {
      await item(page, name).locator('[data-testid=plugin-open]').focus();
      await page.keyboard.press('Enter');
      await panel(page, name, 'mounted').waitFor();
    }
    const tab = (name: string) => page.locator(`[data-testid=tab][data-plugin="${name}"]`);
    const focusedPlugin = (): Promise<string | null> =>
      page.evaluate(
        () =>
          (globalThis as unknown as PageGlobals).document.activeElement?.getAttribute(
            'data-plugin',
          ) ?? null,
      );
    expect(await focusedTestId(page)).toBe('tab');
    expect(await focusedPlugin()).toBe('starter-like');
    const selected = async (): Promise<string | null> =>
      page.locator('[data-testid=tab][aria-selected=true]').getAttribute('data-plugin');

    await page.keyboard.press('ArrowLeft');
    expect(await selected()).toBe('echo');
    expect(await focusedPlugin()).toBe('echo');
    expect(await panel(page, 'echo').isVisible()).toBe(true);
    expect(await panel(page, 'starter-like').isVisible()).toBe(false);
    await page.keyboard.press('ArrowRight');
    expect(await selected()).toBe('starter-like');
    await page.keyboard.press('ArrowRight'); // wraps around
    expect(await selected()).toBe('echo');
    await page.keyboard.press('End');
    expect(await selected()).toBe('starter-like');
    await page.keyboard.press('Home');
    expect(await selected()).toBe('echo');
    // Only the selected tab is in the Tab order (roving tabindex).
    expect(await tab('echo').getAttribute('tabindex')).toBe('0');
    expect(await tab('starter-like').getAttribute('tabindex')).toBe('-1');
    await shot(page, '8-keyboard-tabs.png');

    await page.keyboard.press('Delete'); // closes the focused tab; its neighbour takes over
    await tab('echo').waitFor({ state: 'detached' });
    expect(await selected()).toBe('starter-like');
    expect(await focusedPlugin()).toBe('starter-like');
  }, 30_000);
});

/**
 * Runs in the page: records into `window.__recorded` each close code and connection state of the
 * terminal, and each notice its tab shows. A string, so it runs as written.
 */
const RECORD_TERMINAL_CHANGES = `(() => {
  const recorded = (window.__recorded = { codes: [], states: [], notices: [] });
  const container = document.querySelector('[data-plugin-container="web-terminal"]');
  const notice = document.querySelector(
    '[data-testid="tab-panel"][data-plugin="web-terminal"] [data-testid="tab-notice"]',
  );
  const push = (list, value) => {
    if (value && list[list.length - 1] !== value) list.push(value);
  };
  new MutationObserver(() => {
    push(recorded.codes, container.dataset.terminalCloseCode);
    push(recorded.states, container.dataset.terminalState);
  }).observe(container, { attributes: true });
  new MutationObserver(() => {
    if (!notice.hidden) push(recorded.notices, notice.textContent);
  }).observe(notice, { attributes: true, childList: true, characterData: true, subtree: true });
})()`;

/**
 * Runs in the page: the document's scroll width and every visible element reaching past `width`
 * that no scrolling or clipping ancestor contains (what would make the page scroll sideways).
 */
const LAYOUT_CHECK = `(width) => {
  const outside = [];
  for (const element of document.body.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || box.right <= width + 0.5) continue;
    let contained = false;
    for (let up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') contained = true;
    }
    if (!contained) outside.push(element.tagName.toLowerCase() + '.' + element.className + ' ends at ' + Math.round(box.right));
  }
  return { scrollWidth: document.documentElement.scrollWidth, outside };
}`;

/** The page's globals this suite reads (tsconfig's lib is ES2022: no DOM types here). */
interface PageElement {
  readonly tagName: string;
  readonly classList: { contains(name: string): boolean };
  getAttribute(name: string): string | null;
  blur(): void;
}

interface PageGlobals {
  readonly document: {
    readonly activeElement: PageElement | null;
    readonly documentElement: { readonly scrollWidth: number };
  };
  /** The terminal plugin's test hook (plugins/web-terminal/README.md, "Testing hooks"). */
  readonly __porticoTerminals?: {
    readonly terminal: { readonly cols: number; readonly rows: number };
    readonly state: string;
    text(): string;
  }[];
  /** Filled by RECORD_TERMINAL_CHANGES. */
  readonly __recorded?: { codes: string[]; states: string[]; notices: string[] };
  readonly localStorage: { getItem(key: string): string | null };
  readonly WebSocket: new (url: string) => {
    onmessage: ((event: { data: unknown }) => void) | null;
    onclose: ((event: { code: number }) => void) | null;
    close(): void;
  };
}
