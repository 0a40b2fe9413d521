import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from 'pg';

import { describeWithPostgres, PostgresServer, startPostgres } from '../helpers/postgres';
import { runTs } from '../helpers/run-ts';

describeWithPostgres('state:import')(
  'npm run state:import (DATA_DIR state into DATABASE_URL)',
  () => {
    let server: PostgresServer;
    let dataDir: string;

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
      const env = { DATA_DIR: dataDir, DATABASE_URL: url };
      const first = await runTs('src/cli/import-state.ts', [], env);
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toContain('2 plugin(s) imported, 0 already up to date');
      const expected = [
        { name: 'echo', enabled: false, roles: [] },
        { name: 'term', enabled: true, roles: ['ops'] },
      ];
      expect(await rows(url)).toEqual(expected);
      const second = await runTs('src/cli/import-state.ts', [], env);
      expect(second.stdout).toContain('0 plugin(s) imported, 2 already up to date');
      expect(await rows(url)).toEqual(expected);
    }, 60_000);

    it('without DATABASE_URL → usage, exit 2; an unreachable database → exit 1, no password shown', async () => {
      const usage = await runTs('src/cli/import-state.ts', [], { DATA_DIR: dataDir });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain('set DATABASE_URL');
      const down = await runTs('src/cli/import-state.ts', [], {
        DATA_DIR: dataDir,
        DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/portico',
      });
      expect(down.code).toBe(1);
      expect(down.stderr + down.stdout).not.toContain('hunter2');
    }, 60_000);
  },
);
