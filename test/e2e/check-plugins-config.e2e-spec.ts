import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RunResult, runTs } from '../helpers/run-ts';

const check = (args: string[], env: Record<string, string> = {}): Promise<RunResult> =>
  runTs('src/cli/check-plugins-config.ts', args, env);

describe('check-plugins-config (validate a PLUGINS_CONFIG file before shipping it)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-check-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a valid file → exit 0 with its generation and plugins', async () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, 'plugins:\n  echo: { enabled: false }\n  term: { roles: [ops] }\n');
    const result = await check([file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/valid; generation \d+; 2 plugin\(s\): echo, term/);
  }, 60_000);

  it('an invalid file → exit 1 with the same reason the host would give', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'plugins:\n  echo:\n    enable: false\n');
    const result = await check([file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`${file}: plugins.echo.enable: unknown field\n`);
  }, 60_000);

  it('a missing file → exit 1; no argument and no PLUGINS_CONFIG → usage, exit 2', async () => {
    expect(await check([join(dir, 'nope.yaml')])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot be read (ENOENT)') as string,
    });
    expect(await check([])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('usage') as string,
    });
    const viaEnv = join(dir, 'env.yaml');
    writeFileSync(viaEnv, 'plugins: {}\n');
    expect((await check([], { PLUGINS_CONFIG: viaEnv })).code).toBe(0);
  }, 60_000);
});
