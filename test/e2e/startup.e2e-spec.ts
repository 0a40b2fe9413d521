import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { runTs } from '../helpers/run-ts';
import { startTestApp } from '../helpers/test-app';

describe('startup configuration', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-startup-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('refuses to start in production without keys, naming the variables', async () => {
    const result = await runTs('src/main.ts', [], {
      NODE_ENV: 'production',
      DATA_DIR: dataDir,
      PORT: '0',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('JWT_SECRET or JWT_JWKS_URL');
    expect(result.stderr).toContain('SECRETS_KEY');
  }, 60_000);

  it('refuses an invalid value with a message naming it', async () => {
    const result = await runTs('src/main.ts', [], { DATA_DIR: dataDir, PORT: 'http' });
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/PORT/);
  }, 60_000);

  it.each([
    ['a PLUGINS_CONFIG that does not exist', undefined, 'cannot be read (ENOENT)'],
    [
      'a PLUGINS_CONFIG with a typo',
      'plugins:\n  echo:\n    enable: false\n',
      'plugins.echo.enable: unknown field',
    ],
  ])(
    '%s → exit 78 with one message naming PLUGINS_CONFIG',
    async (_case, text, reason) => {
      const file = join(dataDir, 'plugins.yaml');
      if (text !== undefined) writeFileSync(file, text);
      const plugins = pluginsDirWith(['bundled:echo']);
      try {
        const result = await runTs('src/main.ts', [], {
          DATA_DIR: dataDir,
          PLUGINS_DIR: plugins.dir,
          PORT: '0',
          PLUGINS_CONFIG: file,
        });
        expect(result.code).toBe(78);
        expect(result.stderr).toContain(`PLUGINS_CONFIG: ${file}: ${reason}`);
        expect(result.stderr.match(/PLUGINS_CONFIG/g)).toHaveLength(1);
      } finally {
        plugins.remove();
      }
    },
    60_000,
  );

  it.each([
    [
      'DATABASE_URL with PLUGINS_CONFIG',
      { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/portico', PLUGINS_CONFIG: '/x.yaml' },
      'DATABASE_URL and PLUGINS_CONFIG: set one, not both',
    ],
    [
      'a DATABASE_URL that is not postgres://',
      { DATABASE_URL: 'mysql://u:hunter2@127.0.0.1/portico' },
      'DATABASE_URL: must start with postgres://',
    ],
    [
      'DATABASE_URL without SECRETS_KEY',
      { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/portico', SECRETS_KEY: '' },
      'DATABASE_URL requires SECRETS_KEY to be set',
    ],
    [
      'a database that cannot be reached',
      { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/portico' },
      'DATABASE_URL: cannot use the database at 127.0.0.1:1/portico',
    ],
  ])(
    '%s → exit 78 naming the variable, never the password',
    async (_case, env, message) => {
      const result = await runTs('src/main.ts', [], {
        DATA_DIR: dataDir,
        PORT: '0',
        SECRETS_KEY: randomBytes(32).toString('base64'),
        ...env,
      });
      expect(result.code).toBe(78);
      expect(result.stderr).toContain(message);
      expect(result.stderr + result.stdout).not.toContain('hunter2');
    },
    60_000,
  );

  it('npm run token prints a token the running server accepts', async () => {
    const plugins = pluginsDirWith(['bundled:echo']);
    // No JWT_SECRET: the server and the token script share the generated development key.
    const t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { JWT_SECRET: '', DATA_DIR: dataDir },
      keepDataDir: true,
    });
    try {
      const minted = await runTs('scripts/token.ts', ['--sub', 'alice', '--role', 'admin'], {
        DATA_DIR: dataDir,
      });
      expect(minted.code).toBe(0);
      const token = minted.stdout.trim();
      expect(token.split('.')).toHaveLength(3);
      const list = await http(t.baseUrl, 'GET', '/api/plugins', { token });
      expect(list.status).toBe(200);
      const rescan = await http(t.baseUrl, 'POST', '/api/plugins/rescan', { token });
      expect(rescan.status).toBe(200);
      const usage = await runTs('scripts/token.ts', [], { DATA_DIR: dataDir });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/usage/);
    } finally {
      await t.close();
      plugins.remove();
    }
  }, 60_000);
});
