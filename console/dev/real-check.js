// A throwaway walk through the console on a running Portico (not the stub), in Debian's chromium:
//   node console/dev/real-check.js http://127.0.0.1:8080 "$(npm run --silent token -- --sub alice --role admin)"
// Expects the bundled echo and web-terminal plugins; writes /tmp/console-real-*.png.
'use strict';

const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

const [base, token] = process.argv.slice(2);
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const step = (text) => console.log(`- ${text}`);

async function main() {
  assert.ok(base && token, 'usage: real-check.js <base url> <admin token>');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: FLAGS,
    headless: true,
  });
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));

    step('sign in, live list');
    await page.goto(base + '/');
    await page.getByTestId('sign-in-token').fill(token);
    await page.getByTestId('sign-in-submit').click();
    await page.locator('[data-testid=live-indicator][data-state=live]').waitFor();
    await page
      .locator('[data-testid=plugin-item][data-plugin=echo][data-status=running]')
      .waitFor();

    step('echo in a tab over the real proxy (cookie auth)');
    await page.locator('[data-plugin=echo] [data-testid=plugin-open]').click();
    const echo = page.locator('[data-plugin-container=echo]');
    await echo.locator('pre', { hasText: 'connected' }).waitFor();
    await echo.locator('input[name=msg]').fill('through portico');
    await echo.locator('input[name=msg]').press('Enter');
    await echo.locator('pre', { hasText: '< through portico' }).waitFor();

    step('project picker lists PROJECTS_DIR');
    await page.getByTestId('project-select').selectOption({ index: 1 });

    const hasTerminal =
      (await page.locator('[data-testid=plugin-item][data-plugin=web-terminal]').count()) === 1;
    if (hasTerminal) {
      step('terminal in a tab; switching tabs does not remount it');
      await page.locator('[data-plugin=web-terminal] [data-testid=plugin-open]').click();
      const term = page.locator('[data-plugin-container=web-terminal]');
      await page
        .locator('[data-testid=tab-panel][data-plugin=web-terminal][data-state=mounted]')
        .waitFor({ timeout: 15000 });
      await term.locator('.xterm').waitFor({ timeout: 15000 });
      await page.waitForTimeout(1500);
      await term.locator('.xterm').click();
      await page.keyboard.type('echo console-marker-$((6*7))\n');
      await term
        .locator('.xterm-rows', { hasText: 'console-marker-42' })
        .waitFor({ timeout: 10000 });
      await page.locator('[data-testid=tab][data-plugin=echo]').click();
      await page.locator('[data-testid=tab][data-plugin=web-terminal]').click();
      await term
        .locator('.xterm-rows', { hasText: 'console-marker-42' })
        .waitFor({ timeout: 2000 });
      await page.screenshot({ path: '/tmp/console-real-terminal-1280.png' });
    }

    step('admin dialog: output tail and a restart (the tab says 1012)');
    await page.locator('[data-plugin=echo] [data-action=manage]').click();
    const dialog = page.getByTestId('admin-dialog');
    await dialog.getByTestId('logs').waitFor();
    await page.waitForTimeout(500);
    await dialog.locator('[data-action=restart]').click();
    await dialog.getByTestId('admin-result').filter({ hasText: 'Echo is restarting.' }).waitFor();
    await page
      .locator('[data-testid=plugin-item][data-plugin=echo][data-status=running]')
      .waitFor({ timeout: 15000 });
    await dialog.getByTestId('logs').locator('.log-line').first().waitFor({ timeout: 5000 });
    await page.screenshot({ path: '/tmp/console-real-admin-1280.png' });
    await page.keyboard.press('Escape');
    await page.locator('[data-testid=tab][data-plugin=echo]').click();
    const notice = page.locator(
      '[data-testid=tab-panel][data-plugin=echo] [data-testid=tab-notice]',
    );
    await notice.filter({ hasText: '(1012)' }).waitFor({ timeout: 5000 });
    console.log(`  notice: ${await notice.textContent()}`);
    await page.screenshot({ path: '/tmp/console-real-echo-1280.png' });
    await page
      .locator('[data-testid=tab-panel][data-plugin=echo] [data-action=reload-tab]')
      .click();
    await echo.locator('pre', { hasText: 'connected' }).waitFor();

    step('phone viewport');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: '/tmp/console-real-phone-390.png' });

    step('sign out clears token and cookie');
    await page.getByTestId('sign-out').click();
    await page.getByTestId('sign-in-token').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('auth-token')), null);
    assert.ok(!(await context.cookies(base)).some((c) => c.name === 'portico_token'));

    console.log(
      errors.length === 0
        ? 'real-check: passed, no page errors'
        : `real-check: passed; page errors:\n${errors.join('\n')}`,
    );
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
