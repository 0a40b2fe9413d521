// A throwaway end-to-end walk through the console in Debian's chromium, against the stub
// (stub-server.js): builds first, checks each feature, writes screenshots to /tmp/console-*.png.
//   node console/dev/smoke.js
'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { chromium } = require('playwright-core');
const { startStub } = require('./stub-server');

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WIDE = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const shot = (page, name) => page.screenshot({ path: `/tmp/console-${name}.png` });
const post = (base, path, body) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
const step = (text) => console.log(`- ${text}`);

async function main() {
  const built = spawnSync(process.execPath, [join(__dirname, '..', 'build.js')], {
    stdio: 'inherit',
  });
  assert.equal(built.status, 0, 'build failed');
  const stub = await startStub();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: WIDE });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    const base = stub.url;
    const message = page.getByTestId('message');

    step('sign-in refuses a bad token');
    await page.goto(base + '/');
    await page.getByTestId('sign-in-token').fill('nonsense');
    await page.getByTestId('sign-in-submit').click();
    await message.filter({ hasText: 'That token was refused: invalid token' }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('auth-token')), null);
    await shot(page, 'signin-1280');

    step('sign-in with an admin token stores it and sets the cookie');
    await page.getByTestId('sign-in-token').fill('  Bearer admin-token ');
    await page.getByTestId('sign-in-submit').click();
    await page
      .locator('[data-testid=plugin-item][data-plugin=echo][data-status=running]')
      .waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('auth-token')), 'admin-token');
    const cookies = await context.cookies(base);
    assert.ok(
      cookies.some(
        (c) =>
          c.name === 'portico_token' &&
          c.value === 'admin-token' &&
          c.sameSite === 'Strict' &&
          c.path === '/',
      ),
    );
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor();
    assert.equal(await page.getByTestId('plugin-item').count(), 6);
    assert.equal(await page.locator('[data-action=manage]:visible').count(), 6);

    step('echo opens in a tab, mounts, talks over its socket');
    await page.locator('[data-plugin=echo] [data-testid=plugin-open]').click();
    const echo = page.locator('[data-plugin-container=echo]');
    await echo.locator('pre', { hasText: 'connected' }).waitFor();
    await echo.locator('input[name=msg]').fill('hello from the console');
    await echo.locator('input[name=msg]').press('Enter');
    await echo.locator('pre', { hasText: '< hello from the console' }).waitFor();

    step('notes (frontend-only) mounts with exactly context, onContextChange, rpc');
    await page.locator('[data-plugin=notes] [data-testid=plugin-open]').click();
    const notes = page.locator('[data-plugin-container=notes]');
    await notes.locator('.probe-keys', { hasText: 'api: context,onContextChange,rpc' }).waitFor();
    await notes.locator('.probe-context', { hasText: 'project=none' }).waitFor();

    step('project and theme reach context and onContextChange');
    await page.getByTestId('project-select').selectOption('website');
    await notes.locator('.probe-context', { hasText: 'project=website:/srv/website' }).waitFor();
    const before = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.getByTestId('theme-toggle').click();
    const after = await page.evaluate(() => document.documentElement.dataset.theme);
    assert.notEqual(before, after);
    await notes.locator('.probe-context', { hasText: `theme=${after}` }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('portico-theme')), after);
    await page.getByTestId('theme-toggle').click();

    step('rpc goes to /api/plugins/notes/rpc/hello/world with a JSON body');
    await notes.locator('.probe-rpc').click();
    await notes.locator('.probe-rpc-result', { hasText: '"path":"/hello/world"' }).waitFor();
    assert.match(
      await notes.locator('.probe-rpc-result').textContent(),
      /"method":"POST".*"body":\{"n":1\}/,
    );

    step('switching tabs keeps echo mounted (its log survives)');
    await page.locator('[data-testid=tab][data-plugin=echo]').click();
    await echo.locator('pre', { hasText: '< hello from the console' }).waitFor();
    assert.deepEqual(await page.evaluate(() => window.__probe.mounts), ['notes']);

    step('arrow keys move between tabs');
    await page.locator('[data-testid=tab][data-plugin=echo]').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(
      await page.locator('[data-testid=tab][data-plugin=notes]').getAttribute('aria-selected'),
      'true',
    );
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.plugin), 'notes');
    await page.keyboard.press('ArrowLeft');
    assert.equal(
      await page.locator('[data-testid=tab][data-plugin=echo]').getAttribute('aria-selected'),
      'true',
    );

    step('a broken frontend shows "Plugin failed to load"');
    await page.locator('[data-plugin=broken] [data-testid=plugin-open]').click();
    await page.locator('[data-testid=tab-panel][data-plugin=broken][data-state=failed]').waitFor();
    assert.match(
      await page
        .locator('[data-testid=tab-panel][data-plugin=broken] [data-testid=tab-notice]')
        .textContent(),
      /^Plugin failed to load: boom at import/,
    );

    step('a failed plugin shows status and lastError, then mounts once running');
    await page.locator('[data-plugin=github] [data-testid=plugin-open]').click();
    const github = page.locator('[data-testid=tab-panel][data-plugin=github]');
    await github
      .locator('[data-testid=tab-notice]', { hasText: 'missing required secrets: GITHUB_TOKEN' })
      .waitFor();
    assert.equal(await github.getAttribute('data-state'), 'waiting');
    await shot(page, 'tabs-1280');

    step('admin dialog: set a secret (write-only), the plugin starts and its tab mounts');
    await page.locator('[data-plugin=github] [data-action=manage]').click();
    const dialog = page.getByTestId('admin-dialog');
    await dialog.waitFor();
    const token = dialog.locator('[data-secret=GITHUB_TOKEN]');
    assert.equal(await token.getAttribute('data-set'), 'false');
    assert.equal(await token.locator('[data-action=delete-secret]').isDisabled(), true);
    assert.equal(
      await dialog.locator('[data-secret=WEBHOOK_SECRET] [data-testid=secret-state]').textContent(),
      'set (mounted file)',
    );
    await token.locator('[data-testid=secret-input]').fill('ghp_supersecretvalue');
    await token.locator('[data-action=set-secret]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'GITHUB_TOKEN is saved' }).waitFor();
    assert.equal(await token.locator('[data-testid=secret-input]').inputValue(), '');
    await token.locator('[data-testid=secret-state]', { hasText: 'set (stored)' }).waitFor();
    assert.ok(
      !(await dialog.innerText()).includes('ghp_supersecretvalue'),
      'a secret value is displayed',
    );
    await dialog.getByTestId('logs').locator('.log-line').first().waitFor();
    await shot(page, 'admin-1280');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await github.locator('.probe-keys').waitFor();
    assert.equal(await github.getAttribute('data-state'), 'mounted');

    step('admin dialog: access roles, restart, disable, a 409 shown plainly');
    await page.locator('[data-plugin=echo] [data-action=manage]').click();
    await dialog.getByTestId('access-roles').fill('ops, dev ,ops');
    await dialog.locator('[data-action=save-access]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'limited to: ops, dev' }).waitFor();
    await dialog.getByTestId('access-roles').fill('bad role!');
    await dialog.locator('[data-action=save-access]').click();
    await dialog
      .getByTestId('admin-result')
      .filter({ hasText: 'each role must be 1-128 characters' })
      .waitFor();
    await dialog.getByTestId('access-roles').fill('');
    await dialog.locator('[data-action=save-access]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'open to every user' }).waitFor();
    await dialog.locator('[data-action=restart]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'Echo is restarting.' }).waitFor();
    await page
      .locator('[data-testid=tab-panel][data-plugin=echo] [data-testid=tab-notice]', {
        hasText: '(1012)',
      })
      .waitFor({ state: 'attached' });
    await page
      .locator('[data-testid=plugin-item][data-plugin=echo][data-status=running]')
      .waitFor();
    await dialog.locator('[data-action=disable]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'Echo is disabled.' }).waitFor();
    await dialog.locator('[data-action=restart]').click();
    await dialog
      .getByTestId('admin-result')
      .filter({ hasText: 'Could not restart Echo: plugin echo is disabled (409)' })
      .waitFor();
    await dialog.locator('[data-action=enable]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'Echo is enabled.' }).waitFor();

    step('logs: live lines arrive, autoscroll pauses when scrolled up');
    const logs = dialog.getByTestId('logs');
    const count = await logs.locator('.log-line').count();
    await logs.locator(`.log-line >> nth=${count}`).waitFor({ timeout: 5000 });
    await logs.evaluate((el) => el.scrollTo(0, 0));
    await dialog.locator('[data-action=follow-logs]').waitFor();
    await dialog.locator('[data-action=close-dialog]').click();
    await dialog.waitFor({ state: 'hidden' });

    step('Reload remounts echo after the restart closed its socket (1012)');
    await page.locator('[data-testid=tab][data-plugin=echo]').click();
    const echoNotice = page.locator(
      '[data-testid=tab-panel][data-plugin=echo] [data-testid=tab-notice]',
    );
    assert.match(
      await echoNotice.textContent(),
      /\(1012\): the plugin is restarting.*If it does not, use Reload\./,
    );
    await page
      .locator('[data-testid=tab-panel][data-plugin=echo] [data-action=reload-tab]')
      .click();
    await echo.locator('pre', { hasText: 'connected' }).waitFor();
    assert.equal(await echo.locator('pre', { hasText: 'hello from the console' }).count(), 0);
    await echoNotice.waitFor({ state: 'hidden' });

    step('closing a tab unmounts with the same container');
    await page.locator('[data-testid=tab][data-plugin=notes]').click();
    await page
      .locator('[data-testid=tab-panel][data-plugin=notes] [data-action=close-tab]')
      .click();
    assert.deepEqual(await page.evaluate(() => window.__probe.unmounts), ['notes']);
    assert.equal(await page.locator('[data-plugin-container=notes]').count(), 0);

    step('events socket: 1001 shows reconnecting, then live again');
    await post(base, '/__stub/drop-events', { code: 1001 });
    await page.locator('[data-testid=live-indicator][data-state=reconnecting]').waitFor();
    await message.filter({ hasText: '(1001)' }).waitFor();
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor({ timeout: 5000 });

    step('phone layout');
    await page.setViewportSize(PHONE);
    await shot(page, 'phone-tab-390');
    await page.getByTestId('menu-toggle').click();
    await page.locator('[data-testid=plugin-item][data-plugin=echo]').waitFor();
    await shot(page, 'phone-menu-390');
    await page.keyboard.press('Escape');
    assert.equal(await page.getByTestId('menu-toggle').getAttribute('aria-expanded'), 'false');
    await page.locator('[data-testid=tab][data-plugin=echo]').click();
    await page.locator('[data-plugin=echo] [data-action=close-tab]').click();
    await page.locator('[data-plugin=broken] [data-action=close-tab]').click();
    await page.locator('[data-plugin=github] [data-action=close-tab]').click();
    await page.getByTestId('plugin-list').waitFor();
    await shot(page, 'phone-list-390');
    await page.locator('[data-plugin=github] [data-action=manage]').click();
    await shot(page, 'phone-admin-390');
    await page.keyboard.press('Escape');
    await page.setViewportSize(WIDE);

    step('the session expires (events close 4401): back to sign-in with a message');
    await post(base, '/__stub/expire');
    await message.filter({ hasText: 'Your session has expired — sign in again.' }).waitFor();
    await page.getByTestId('sign-in-token').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('auth-token')), null);
    assert.ok(!(await context.cookies(base)).some((c) => c.name === 'portico_token'));

    step('a non-admin sees no admin controls');
    await post(base, '/__stub/revive');
    await page.getByTestId('sign-in-token').fill('user-token');
    await page.getByTestId('sign-in-submit').click();
    await page.locator('[data-testid=plugin-item][data-plugin=echo]').waitFor();
    assert.equal(await page.locator('[data-action=manage]:visible').count(), 0);
    await page.getByTestId('theme-toggle').click();
    await shot(page, 'user-dark-1280');
    await page.getByTestId('sign-out').click();
    await message.filter({ hasText: 'You are signed out.' }).waitFor();

    step('phone sign-in');
    await page.setViewportSize(PHONE);
    await shot(page, 'signin-390');
    await page.setViewportSize(WIDE);

    step('without /api/events the list comes from GET /api/plugins, then goes live');
    await post(base, '/__stub/events', { on: false });
    await page.getByTestId('sign-in-token').fill('admin-token');
    await page.getByTestId('sign-in-submit').click();
    await page.locator('[data-testid=plugin-item][data-plugin=echo]').waitFor();
    await page.locator('[data-testid=live-indicator][data-state=reconnecting]').waitFor();
    await message.filter({ hasText: 'could not be opened' }).waitFor();
    await post(base, '/__stub/events', { on: true });
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor({ timeout: 10000 });
    assert.equal(await message.isVisible(), false);

    step('keyboard: Tab reaches the list with a visible focus ring');
    await page.locator('body').click({ position: { x: 5, y: 790 } });
    await page.getByTestId('sign-out').focus();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(
      () => document.activeElement?.closest('[data-plugin]')?.dataset.plugin,
    );
    assert.ok(focused, 'Tab did not reach a plugin entry');
    await page.keyboard.press('Enter');
    await page.locator(`[data-testid=tab][data-plugin=${focused}]`).waitFor();
    await page.locator(`[data-testid=tab][data-plugin=${focused}]`).focus();
    await shot(page, 'focus-1280');
    await page.keyboard.press('Delete');
    await page.getByTestId('no-tabs').waitFor();
    assert.equal(
      await page.evaluate(() => document.activeElement?.closest('[data-plugin]')?.dataset.plugin),
      focused,
    );

    const unexpected = errors.filter(
      (e) =>
        !/boom at import|Plugin broken failed to load|401|Failed to load resource|api\/events' failed/.test(
          e,
        ),
    );
    assert.deepEqual(unexpected, [], 'unexpected page errors');
    console.log('smoke: all steps passed; screenshots in /tmp/console-*.png');
  } finally {
    await browser.close();
    await stub.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
