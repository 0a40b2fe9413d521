import { existsSync } from 'node:fs';

import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';

/** Debian's chromium (`.ci/run` installs it); never a browser downloaded by a test tool. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless, and quiet: no network of its own beyond what the page asks for. */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * `describe` where the suite can run: without chromium it is skipped locally, but CI (where it
 * must run) fails instead of skipping.
 */
export const browserDescribe: jest.Describe =
  existsSync(CHROMIUM) || process.env.CI !== undefined ? describe : describe.skip;

/** Launches Debian's chromium headless with the flags above. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
}

/** What the web terminal exposes to tests in the page (plugins/web-terminal/frontend). */
interface TerminalGlobals {
  __porticoTerminals?: { text(): string }[];
}

/**
 * Waits until a whole line of the first web terminal's buffer reads `line` (output, not the
 * command that printed it, which has the prompt in front).
 */
export function waitForTerminalLine(page: Page, line: string, timeout: number): Promise<unknown> {
  return page.waitForFunction(
    (expected) =>
      ((globalThis as unknown as TerminalGlobals).__porticoTerminals?.[0]?.text() ?? '')
        .split('\n')
        .some((l) => l.trimEnd() === expected),
    line,
    { timeout },
  );
}
