import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const CLI = [
  require.resolve('ts-node/dist/bin.js'),
  '--transpile-only',
  'src/cli/check-plugins-config.ts',
];

async function check(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

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
