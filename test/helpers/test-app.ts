import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { INestApplication } from '@nestjs/common';

import { mintToken, MintOptions } from '../../src/auth/token-minter';
import { createApp } from '../../src/bootstrap';
import { loadConfig } from '../../src/config/load-config';
import { PorticoConfig } from '../../src/config/portico-config';

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
  close(): Promise<void>;
}

/**
 * Starts the real application on a loopback port with a fresh DATA_DIR.
 * `env` overrides any configuration variable.
 */
export async function startTestApp(
  options: { pluginsDir?: string; env?: Record<string, string>; keepDataDir?: boolean } = {},
): Promise<TestApp> {
  const dataDir = options.env?.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'portico-test-'));
  const config = loadConfig({
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
  const app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const secret = config.JWT_SECRET ?? TEST_JWT_SECRET;
  const token = (o: Partial<MintOptions> = {}): string =>
    mintToken(secret, { sub: 'alice', name: 'Alice', roles: ['user'], ...o });
  return {
    app,
    config,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    token,
    adminToken: () => token({ sub: 'root', name: 'Root', roles: ['admin'] }),
    close: async () => {
      await app.close();
      if (options.keepDataDir !== true) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
