import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { FileSecretStore } from '../../src/plugins/secrets/file-secret-store';
import { RotationStore, rotationStore, VALUE_A, VALUE_B } from '../helpers/rotation-store';

const SCRIPT = resolve(__dirname, '../../scripts/secrets-rotate.ts');

/** `npm run secrets:rotate` as an operator runs it: the script in its own process. */
describe('npm run secrets:rotate', () => {
  let fixture: RotationStore;
  let dataDir: string;
  let file: string;
  let oldKey: Buffer;
  let newKey: Buffer;
  let storeWith: (key: Buffer) => FileSecretStore;

  beforeEach(async () => {
    fixture = await rotationStore();
    ({ dataDir, file, oldKey, newKey, storeWith } = fixture);
  });

  afterEach(() => fixture.remove());

  /** Runs the script in its own process; the worker's event loop stays free meanwhile. */
  const run = (env: Record<string, string>): Promise<{ status: number | null; out: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', SCRIPT],
        {
          env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', DATA_DIR: dataDir, ...env },
          encoding: 'utf8',
          timeout: 30_000,
        },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
          resolve({ status: code, out: `${stdout}${stderr}` });
        },
      );
    });
  const b64 = (key: Buffer): string => key.toString('base64');

  it('re-encrypts with NEW_SECRETS_KEY and prints counts, never values or keys', async () => {
    const res = await run({ SECRETS_KEY: b64(oldKey), NEW_SECRETS_KEY: b64(newKey) });
    expect(res.status).toBe(0);
    expect(res.out).toContain('re-encrypted 2 secret value(s)');
    for (const secret of [VALUE_A, VALUE_B, b64(oldKey), b64(newKey)])
      expect(res.out).not.toContain(secret);
    expect(storeWith(newKey).read('assistant', 'MODEL_KEY')).toBe(VALUE_B);
  });

  it('exits 1 and changes nothing when SECRETS_KEY does not open the store', async () => {
    const before = readFileSync(file, 'utf8');
    const res = await run({ SECRETS_KEY: b64(randomBytes(32)), NEW_SECRETS_KEY: b64(newKey) });
    expect(res.status).toBe(1);
    expect(res.out).toMatch(/secret store is corrupt.*\nnothing was changed/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('exits 2 without a valid NEW_SECRETS_KEY', async () => {
    expect((await run({ SECRETS_KEY: b64(oldKey) })).status).toBe(2);
    expect((await run({ SECRETS_KEY: b64(oldKey), NEW_SECRETS_KEY: 'c2hvcnQ=' })).status).toBe(2);
  });

  it('updates the generated development key when SECRETS_KEY came from it', async () => {
    const devKeys = join(dataDir, 'dev-keys.json');
    writeFileSync(
      devKeys,
      JSON.stringify({ JWT_SECRET: 'j'.repeat(43), SECRETS_KEY: b64(oldKey) }),
    );
    const res = await run({ NEW_SECRETS_KEY: b64(newKey) });
    expect(res.status).toBe(0);
    expect(JSON.parse(readFileSync(devKeys, 'utf8'))).toEqual({
      JWT_SECRET: 'j'.repeat(43),
      SECRETS_KEY: b64(newKey),
    });
    expect(storeWith(newKey).read('board', 'GITHUB_TOKEN')).toBe(VALUE_A);
  });
});
