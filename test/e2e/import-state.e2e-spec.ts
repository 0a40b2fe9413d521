import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from 'pg';

import { FileSecretStore } from '../../src/plugins/secrets/file-secret-store';
import { SecretCipher } from '../../src/plugins/secrets/secret-cipher';
import {
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  withDatabase,
} from '../helpers/postgres';
import { runTs } from '../helpers/run-ts';

describeWithPostgres('state:import')(
  'npm run state:import (DATA_DIR state into DATABASE_URL)',
  () => {
    let server: PostgresServer;
    let dataDir: string;
    const secretsKey = randomBytes(32).toString('base64');

    beforeAll(async () => {
      server = await startPostgres();
      dataDir = mkdtempSync(join(tmpdir(), 'portico-import-'));
    }, 60_000);

    afterAll(async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await server?.stop();
    }, 60_000);

    const rows = async (url: string): Promise<unknown[]> => {
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
        return (
          await client.query('SELECT name, enabled, roles FROM portico_plugin_state ORDER BY name')
        ).rows;
      } finally {
        await client.end();
      }
    };

    it('imports every plugin once; a second run changes nothing', async () => {
      const url = await server.createDatabase();
      writeFileSync(
        join(dataDir, 'plugins-state.json'),
        JSON.stringify({
          plugins: { echo: { enabled: false }, term: { enabled: true, roles: ['ops'] } },
        }),
      );
      const env = { DATA_DIR: dataDir, DATABASE_URL: url, SECRETS_KEY: secretsKey };
      const first = await runTs('src/cli/import-state.ts', [], env);
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toContain('2 plugin(s) imported, 0 already up to date');
      expect(first.stdout).toContain('no secret store, no secrets to import');
      const expected = [
        { name: 'echo', enabled: false, roles: [] },
        { name: 'term', enabled: true, roles: ['ops'] },
      ];
      expect(await rows(url)).toEqual(expected);
      const second = await runTs('src/cli/import-state.ts', [], env);
      expect(second.stdout).toContain('0 plugin(s) imported, 2 already up to date');
      expect(await rows(url)).toEqual(expected);
    }, 60_000);

    it('secrets: re-sealed with SECRETS_KEY on the way in, idempotent, never printed', async () => {
      const url = await server.createDatabase();
      const dir = mkdtempSync(join(tmpdir(), 'portico-import-secrets-'));
      try {
        // The single host ran with its generated development key.
        const devKey = randomBytes(32);
        writeFileSync(
          join(dir, 'dev-keys.json'),
          JSON.stringify({ JWT_SECRET: 'x'.repeat(43), SECRETS_KEY: devKey.toString('base64') }),
        );
        const file = new FileSecretStore(join(dir, 'secrets.enc.json'), new SecretCipher(devKey));
        file.load();
        const values = {
          a: `alpha-${randomBytes(6).toString('hex')}`,
          b: `beta-${randomBytes(6).toString('hex')}`,
        };
        await file.set('echo', 'API_TOKEN', values.a);
        await file.set('term', 'SHELL_PASSWORD', values.b);
        const env = { DATA_DIR: dir, DATABASE_URL: url, SECRETS_KEY: secretsKey };

        const first = await runTs('src/cli/import-state.ts', [], env);
        expect(first).toMatchObject({ code: 0 });
        expect(first.stdout).toContain('2 secret value(s) imported, 0 already up to date');
        const second = await runTs('src/cli/import-state.ts', [], env);
        expect(second.stdout).toContain('0 secret value(s) imported, 2 already up to date');
        for (const out of [first, second])
          for (const v of Object.values(values)) expect(out.stdout + out.stderr).not.toContain(v);

        const rows = await withDatabase(url, (c) =>
          c.query<{ plugin: string; key: string; key_id: string }>(
            'SELECT plugin, key, key_id, ciphertext FROM portico_plugin_secret ORDER BY plugin',
          ),
        );
        expect(rows.rows.map((r) => [r.plugin, r.key, r.key_id])).toEqual([
          ['echo', 'API_TOKEN', new SecretCipher(Buffer.from(secretsKey, 'base64')).keyId],
          ['term', 'SHELL_PASSWORD', new SecretCipher(Buffer.from(secretsKey, 'base64')).keyId],
        ]);
        for (const v of Object.values(values)) expect(JSON.stringify(rows.rows)).not.toContain(v);

        // A value altered in the file: refused, nothing imported, exit 1.
        await file.set('echo', 'API_TOKEN', 'changed-value');
        const sealed = JSON.parse(readFileSync(join(dir, 'secrets.enc.json'), 'utf8')) as {
          secrets: Record<string, Record<string, { tag: string }>>;
        };
        sealed.secrets.echo.API_TOKEN.tag = randomBytes(16).toString('base64');
        writeFileSync(join(dir, 'secrets.enc.json'), JSON.stringify(sealed));
        const bad = await runTs('src/cli/import-state.ts', [], env);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain('1 value(s) failed authentication (echo/API_TOKEN)');

        // Sealed with a key neither given nor generated: refused, naming the key ids.
        const wrong = await runTs('src/cli/import-state.ts', [], {
          ...env,
          SOURCE_SECRETS_KEY: randomBytes(32).toString('base64'),
        });
        expect(wrong.code).toBe(1);
        expect(wrong.stderr).toContain('sealed with another SECRETS_KEY');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 90_000);

    it('without DATABASE_URL → usage, exit 2; an unreachable database → exit 1, no password shown', async () => {
      const usage = await runTs('src/cli/import-state.ts', [], { DATA_DIR: dataDir });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain('set DATABASE_URL');
      const down = await runTs('src/cli/import-state.ts', [], {
        DATA_DIR: dataDir,
        SECRETS_KEY: secretsKey,
        DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/portico',
      });
      expect(down.code).toBe(1);
      expect(down.stderr + down.stdout).not.toContain('hunter2');
    }, 60_000);
  },
);
