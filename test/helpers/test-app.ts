import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { INestApplication } from '@nestjs/common';

import { mintToken, MintOptions } from '../../scripts/lib/token-minter';
import { createApp } from '../../src/bootstrap';
import { loadConfig } from '../../src/config/load-config';
import { PorticoConfig } from '../../src/config/portico-config';
import { listen } from '../../src/http/listen';
import { suiteHasEnded, track } from './leftovers';

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const FIXTURE_PLUGINS = resolve(__dirname, '../fixtures/plugins');
export const BUNDLED_PLUGINS = resolve(__dirname, '../../plugins');

export interface TestApp {
  readonly app: INestApplication;
  readonly config: PorticoConfig;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  /** A valid token for a plain user (override any claim). */
  token(options?: Partial<MintOptions>): string;
  /** A valid token with the admin role. */
  adminToken(): string;
  /** Stops the app and its plugins; a second call waits for the first. */
  close(): Promise<void>;
}

/**
 * Starts the real application on a loopback port with a fresh DATA_DIR.
 * `env` overrides any configuration variable. An app that fails to start is closed before the
 * error is thrown.
 */
export async function startTestApp(
  options: { pluginsDir?: string; env?: Record<string, string>; keepDataDir?: boolean } = {},
): Promise<TestApp> {
  if (suiteHasEnded()) throw new Error('the suite has ended: no new app');
  const dataDir = options.env?.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'portico-test-'));
  const removeDataDir = (): void => {
    if (options.keepDataDir !== true) rmSync(dataDir, { recursive: true, force: true });
  };
  let config: PorticoConfig;
  let app: INestApplication | undefined;
  try {
    config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      PLUGINS_DIR: options.pluginsDir ?? FIXTURE_PLUGINS,
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SHUTDOWN_GRACE_MS: '3000',
      ...options.env,
    });
    app = await createApp(config);
    await listen(app, config, 0, '127.0.0.1');
    // A test that timed out runs on after its suite ended: an app started then is not kept.
    if (suiteHasEnded()) throw new Error('the suite ended while this app was starting');
  } catch (err) {
    // Whatever started (plugin servers, the listener) stops before the error reaches the test;
    // a DATA_DIR the caller passed in may belong to another host and stays.
    await app?.close().catch(() => undefined);
    if (options.env?.DATA_DIR === undefined) removeDataDir();
    throw err;
  }
  const started = app;
  const port = (started.getHttpServer().address() as AddressInfo).port;
  const secret = config.JWT_SECRET ?? TEST_JWT_SECRET;
  const token = (o: Partial<MintOptions> = {}): string =>
    mintToken(secret, { sub: 'alice', name: 'Alice', roles: ['user'], ...o });
  let closing: Promise<void> | undefined;
  const testApp: TestApp = {
    app: started,
    config,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    token,
    adminToken: () => token({ sub: 'root', name: 'Root', roles: ['admin'] }),
    close: () => {
      untrack();
      closing ??= started.close().then(removeDataDir);
      return closing;
    },
  };
  const untrack = track(() => testApp.close());
  return testApp;
}
