import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { Browser, BrowserContext, Page } from 'playwright-core';

import { browserDescribe, launchChromium, waitForTerminalLine } from '../helpers/browser';
import { OidcProvider, startOidcProvider } from '../helpers/oidc-provider';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';

/** Every case leaves screenshots here (ignored by git), to look at when one fails. */
const ARTIFACTS = resolve(__dirname, '../../test-artifacts/oidc-browser');
/** Longest wait for any one thing in the page; each test has its own overall limit. */
const STEP_MS = 10_000;
/** Portico's session tokens live this long: the console renews them every 3.75 s. */
const TOKEN_TTL_MS = 5_000;
/** What the console says when Portico refuses to renew the session's token. */
const SESSION_ENDED = 'Your session has ended — sign in again.';
const DESKTOP = { width: 1280, height: 800 };

/**
 * Single sign-on in a real Chromium, against a real OpenID provider (npm oidc-provider in its
 * own process) and Portico with the bundled echo and terminal plugins: the provider's own login
 * and consent pages, the console kept signed in by 5-second session tokens (the terminal and the
 * events socket reconnect silently when Portico closes them at each token's expiry), groups
 * mapped to roles, sign-out through the provider, and a session revoked at the provider.
 */
browserDescribe('single sign-on in the browser (Chromium, OpenID provider)', () => {
  let provider: OidcProvider;
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let browser: Browser;
  /** Every browser profile opened, closed after the suite. */
  const contexts: BrowserContext[] = [];
  /** Alice's console from case 1, used on by the cases that follow it. */
  let alicePage: Page | undefined;

  const accounts = {
    alice: { name: 'Alice Doe', groups: ['portico-admins', 'staff'] },
    bob: { name: 'Bob', groups: ['staff'] },
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Access tokens of 3 s: every token the console asks for makes Portico refresh at the
    // provider (it refreshes when less than 30 s are left), so a revocation shows at once.
    provider = await startOidcProvider({
      clients: [],
      accounts,
      groupsClaim: 'always',
      ttl: { AccessToken: 3 },
    });
    plugins = pluginsDirWith(['bundled:echo', 'bundled:web-terminal']);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: {
        OIDC_ISSUER: provider.issuer,
        OIDC_CLIENT_ID: 'portico',
        OIDC_ROLE_MAP: 'portico-admins=admin,developers=terminal',
        SESSION_TOKEN_TTL_MS: String(TOKEN_TTL_MS),
        SECRETS_KEY: randomBytes(32).toString('base64'),
      },
    });
    await provider.setClient({
      client_id: 'portico',
      redirect_uris: [`${t.baseUrl}/api/auth/callback`],
      post_logout_redirect_uris: [`${t.baseUrl}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
    await provider?.stop();
    plugins?.remove();
  });

  /**
   * A new browser profile (no cookies, nothing stored) whose pages record every WebSocket close
   * (RECORD_SOCKET_CLOSES) from their first script on.
   */
  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
    contexts.push(context);
    context.setDefaultTimeout(STEP_MS);
    await context.addInitScript(RECORD_SOCKET_CLOSES);
    return context.newPage();
  }

  const shot = async (page: Page, file: string): Promise<void> => {
    await page.screenshot({ path: join(ARTIFACTS, file) });
  };

  const inPage = <T>(page: Page, fn: (g: PageGlobals) => T): Promise<T> =>
    page.evaluate(`(${fn.toString()})(globalThis)`) as Promise<T>;

  const storedToken = (page: Page): Promise<string | null> =>
    inPage(page, (g) => g.localStorage.getItem('auth-token'));

  const live = (page: Page) => page.locator('[data-testid=live-indicator][data-state=live]');

  const item = (page: Page, name: string) =>
    page.locator(`[data-testid=plugin-item][data-plugin="${name}"]`);

  /** True while the page is one of the provider's (its origin, any path). */
  const atProvider = (url: URL): boolean => url.origin === provider.issuer;

  /**
   * Signs `login` in the way a person does: the console's single sign-on button, the provider's
   * login form (any password), its consent page when it shows one, and back to the console.
   */
  async function signInWithSso(page: Page, login: string, screenshots?: string): Promise<void> {
    await page.goto(`${t.baseUrl}/`);
    const sso = page.locator('[data-testid=sso-sign-in]');
    await sso.waitFor();
    if (screenshots !== undefined) await shot(page, `${screenshots}-sign-in.png`);
    await sso.click();
    await page.waitForURL(atProvider);
    await page.locator('input[name=login]').fill(login);
    await page.locator('input[name=password]').fill('any password');
    if (screenshots !== undefined) await shot(page, `${screenshots}-provider-login.png`);
    await page.locator('button[type=submit]').click();
    // The provider asks for consent the first time a provider session meets the client.
    const consent = page.getByRole('button', { name: 'Continue' });
    await live(page).or(consent).waitFor();
    if (await consent.isVisible()) {
      if (screenshots !== undefined) await shot(page, `${screenshots}-provider-consent.png`);
      await consent.click();
    }
    await live(page).waitFor();
    expect(new URL(page.url()).origin).toBe(t.baseUrl);
  }

  /** Opens the terminal tab from the plugin list and waits until its frontend is mounted. */
  async function openTerminalTab(page: Page): Promise<void> {
    await item(page, 'web-terminal').locator('[data-testid=plugin-open]').click();
    await page
      .locator('[data-testid=tab-panel][data-plugin="web-terminal"][data-state="mounted"]')
      .waitFor();
  }

  const terminal = (page: Page) => page.locator('[data-plugin-container=web-terminal]');

  const terminalText = (page: Page): Promise<string> =>
    inPage(page, (g) => g.__porticoTerminals?.[0]?.text() ?? '');

  /** Types a command into the terminal, key by key, and presses Enter. */
  async function run(page: Page, command: string): Promise<void> {
    await page.keyboard.type(command);
    await page.keyboard.press('Enter');
  }

  const waitForLine = (page: Page, line: string, timeout = STEP_MS): Promise<unknown> =>
    waitForTerminalLine(page, line, timeout);

  /** The socket closes the page recorded (RECORD_SOCKET_CLOSES) for paths starting with `path`. */
  const closesOf = async (page: Page, path: string): Promise<number[]> =>
    (await inPage(page, (g) => g.__socketCloses ?? []))
      .filter((close) => close.path.startsWith(path))
      .map((close) => close.code);

  it('signs a newcomer in through the provider and shows the console with admin controls', async () => {
    const page = await newPage();
    await signInWithSso(page, 'alice', '1');
    alicePage = page;
    expect(new URL(page.url()).pathname).toBe('/');
    for (const name of ['echo', 'web-terminal'])
      await item(page, name).and(page.locator('[data-status=running]')).waitFor();
    expect(await page.locator('[data-testid=user]').textContent()).toBe('Alice Doe (admin)');
    // portico-admins → admin: one Manage button per plugin.
    expect(await page.locator('[data-action=manage]:visible').count()).toBe(2);
    expect(await page.locator('[data-testid=sign-in-token]').count()).toBe(0);
    // The token the console got is a Portico session token, kept where plugins read it.
    const token = await storedToken(page);
    expect(token).not.toBeNull();
    const header = JSON.parse(Buffer.from(token?.split('.')[0] ?? '', 'base64url').toString()) as {
      kid?: string;
    };
    expect(header).toMatchObject({ kid: 'portico-session' });
    await shot(page, '1-console.png');
  }, 30_000);

  it('keeps the terminal (same shell) and the live connection across token expiries, silently', async () => {
    const page = alicePage ?? (await newPage());
    if (alicePage === undefined) await signInWithSso(page, 'alice');
    await openTerminalTab(page);
    await terminal(page).and(page.locator('[data-terminal-state=open]')).waitFor();
    await page.locator('[data-plugin-container=web-terminal] .xterm-screen').click();

    const kept = `kept-${randomBytes(4).toString('hex')}`;
    await run(page, `export X=${kept}; echo sso-$((6*7))`);
    await waitForLine(page, 'sso-42');
    await shot(page, '2-terminal.png');

    // From here on: every token the console stores, and whether the sign-in form ever shows.
    await page.evaluate(RECORD_TOKENS_AND_SIGN_IN);
    const terminalClosesBefore = (await closesOf(page, '/plugin-ws/web-terminal')).length;
    const eventsClosesBefore = (await closesOf(page, '/api/events')).length;
    const started = Date.now();

    // Portico closes the terminal's socket with 4401 when its token expires, and the terminal
    // opens it again at once with the token the console stored meanwhile. The console renews at
    // 75% of a token's lifetime, so these closes come every 3.75 s or so. Waited for: three of
    // them, two new tokens, the terminal open again, and two whole token lifetimes (and a
    // second) since the command ran, so the shell outlived two expiries of its tokens.
    await page.waitForFunction(
      ({ before, until }) => {
        const g = globalThis as unknown as PageGlobals;
        const closes = (g.__socketCloses ?? []).filter((c) =>
          c.path.startsWith('/plugin-ws/web-terminal'),
        );
        return (
          Date.now() >= until &&
          closes.length - before >= 3 &&
          (g.__tokens?.length ?? 0) >= 2 &&
          g.__porticoTerminals?.[0]?.state === 'open'
        );
      },
      { before: terminalClosesBefore, until: started + 2 * TOKEN_TTL_MS + 1_000 },
      { timeout: 5 * TOKEN_TTL_MS, polling: 100 },
    );
    const terminalCloses = (await closesOf(page, '/plugin-ws/web-terminal')).slice(
      terminalClosesBefore,
    );
    expect(terminalCloses.length).toBeGreaterThanOrEqual(3);
    expect(terminalCloses.every((code) => code === 4401)).toBe(true);
    // The events socket was closed at its tokens' expiries too, and is live again.
    await page.waitForFunction(
      ({ before }) =>
        ((globalThis as unknown as PageGlobals).__socketCloses ?? []).filter((c) =>
          c.path.startsWith('/api/events'),
        ).length -
          before >=
        2,
      { before: eventsClosesBefore },
      { timeout: 2 * TOKEN_TTL_MS },
    );
    const eventsCloses = (await closesOf(page, '/api/events')).slice(eventsClosesBefore);
    expect(eventsCloses.every((code) => code === 4401)).toBe(true);
    await live(page).waitFor();

    // The same shell, still usable: what was exported before is there.
    await run(page, 'echo "x=$X"');
    await waitForLine(page, `x=${kept}`);
    await shot(page, '2-terminal-after-expiries.png');
    const text = await terminalText(page);
    expect(text).toContain('sso-42'); // the screen was kept
    expect(text).not.toContain('[sign-in expired'); // the reconnects were silent
    expect(text).not.toContain('[new session');

    const recorded = await inPage(page, (g) => ({
      tokens: g.__tokens ?? [],
      sawSignIn: g.__sawSignIn ?? false,
      liveStates: g.__liveStates ?? [],
    }));
    expect(new Set(recorded.tokens).size).toBe(recorded.tokens.length); // each one new
    expect(recorded.sawSignIn).toBe(false);
    // Each 4401 is followed by a new connection at once: never "reconnecting" (a failed attempt).
    expect(recorded.liveStates).toContain('connecting');
    expect(recorded.liveStates).not.toContain('reconnecting');
    expect(await page.locator('[data-testid=message]').isVisible()).toBe(false);
    expect(await page.locator('[data-testid=sign-in-token]').count()).toBe(0);
    expect(await storedToken(page)).toBe(recorded.tokens[recorded.tokens.length - 1]);
  }, 45_000);

  it('maps groups to roles: a user with no mapped group gets no admin controls and no shell', async () => {
    const page = await newPage();
    await signInWithSso(page, 'bob', '3');
    for (const name of ['echo', 'web-terminal']) await item(page, name).waitFor();
    expect(await page.locator('[data-testid=user]').textContent()).toBe('Bob');
    expect(await page.locator('[data-action=manage]:visible').count()).toBe(0);

    await openTerminalTab(page);
    const refused = terminal(page).and(page.locator('[data-terminal-close-code="4403"]'));
    await refused.waitFor();
    expect(await terminal(page).getAttribute('data-terminal-state')).toBe('closed');
    await page.waitForFunction(
      () =>
        ((globalThis as unknown as PageGlobals).__porticoTerminals?.[0]?.text() ?? '').includes(
          'You do not have access to the terminal (it needs the admin or terminal role).',
        ),
      undefined,
      { timeout: STEP_MS },
    );
    // Nothing but the notice: no prompt, no shell output.
    expect((await terminalText(page)).trim()).toBe(
      '[You do not have access to the terminal (it needs the admin or terminal role).]',
    );
    expect(await closesOf(page, '/plugin-ws/web-terminal')).toEqual([4403]);
    await shot(page, '3-no-shell.png');
  }, 30_000);

  it('signs out through the provider and comes back to the sign-in page', async () => {
    const page = alicePage ?? (await newPage());
    if (alicePage === undefined) await signInWithSso(page, 'alice');
    await page.locator('[data-testid=sign-out]').click();
    await page.waitForURL(atProvider);
    const confirm = page.getByRole('button', { name: 'Yes, sign me out' });
    await confirm.waitFor();
    await shot(page, '4-provider-sign-out.png');
    await confirm.click();

    await page.waitForURL((url) => url.origin === t.baseUrl && url.pathname === '/');
    await page.locator('[data-testid=sso-sign-in]').waitFor();
    await shot(page, '4-signed-out.png');
    expect(await storedToken(page)).toBeNull();
    const status = await page.evaluate(async () => {
      const res = await fetch('/api/auth/token', {
        method: 'POST',
        credentials: 'include',
        headers: { accept: 'application/json' },
      });
      return res.status;
    });
    expect(status).toBe(401);

    // The provider session ended too: signing in again asks for a login.
    await page.locator('[data-testid=sso-sign-in]').click();
    await page.waitForURL(atProvider);
    await page.locator('input[name=login]').waitFor();
  }, 30_000);

  it('shows "session ended" in an open console once the account is revoked at the provider', async () => {
    const page = await newPage();
    await signInWithSso(page, 'alice', '5');
    const revoked = await provider.revokeAccount('alice');
    expect(revoked.RefreshToken ?? 0).toBeGreaterThan(0);

    // The next renewal (every 3.75 s) refreshes at the provider, which refuses: session over.
    await page
      .locator('[data-testid=message]')
      .filter({ hasText: SESSION_ENDED })
      .waitFor({ timeout: 30_000 });
    await page.locator('[data-testid=sso-sign-in]').waitFor();
    expect(await page.locator('[data-testid=live-indicator]').count()).toBe(0);
    expect(await storedToken(page)).toBeNull();
    await shot(page, '5-session-ended.png');
  }, 45_000);
});

/** The page's globals this suite reads (tsconfig's lib is ES2022: no DOM types here). */
interface PageGlobals {
  readonly localStorage: { getItem(key: string): string | null };
  /** The terminal plugin's test hook (plugins/web-terminal/README.md, "Testing"). */
  readonly __porticoTerminals?: { readonly state: string; text(): string }[];
  /** Filled by RECORD_SOCKET_CLOSES. */
  readonly __socketCloses?: { path: string; code: number }[];
  /** Filled by RECORD_TOKENS_AND_SIGN_IN: each token stored, in order. */
  readonly __tokens?: string[];
  readonly __sawSignIn?: boolean;
  readonly __liveStates?: string[];
}

/**
 * Runs in each page before its own scripts: records the path and close code of every WebSocket
 * the page opens (the console's events socket, the terminal's) in `window.__socketCloses`.
 * The console later wraps `WebSocket` again (socket-observer.ts), around this subclass.
 */
const RECORD_SOCKET_CLOSES = `(() => {
  const closes = (window.__socketCloses = []);
  const Native = window.WebSocket;
  window.WebSocket = class RecordedWebSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const path = new URL(this.url).pathname;
      this.addEventListener('close', (event) => closes.push({ path, code: event.code }));
    }
  };
})()`;

/**
 * Runs in the page: records in `window.__tokens` each token stored under `auth-token` from now
 * on, sets `window.__sawSignIn` if the sign-in form ever shows, and lists in
 * `window.__liveStates` the states the live indicator goes through.
 */
const RECORD_TOKENS_AND_SIGN_IN = `(() => {
  const tokens = (window.__tokens = []);
  window.__sawSignIn = false;
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    if (this === localStorage && key === 'auth-token') tokens.push(String(value));
    return setItem.call(this, key, value);
  };
  const states = (window.__liveStates = []);
  new MutationObserver(() => {
    if (document.querySelector('[data-testid="sign-in-token"]')) window.__sawSignIn = true;
    const state = document.querySelector('[data-testid="live-indicator"]')?.dataset.state;
    if (state && states[states.length - 1] !== state) states.push(state);
  }).observe(document.body, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ['data-state'],
  });
})()`;
