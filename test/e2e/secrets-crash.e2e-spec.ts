import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SecretCipher } from '../../src/plugins/secrets/secret-cipher';
import { FileSecretStore } from '../../src/plugins/secrets/file-secret-store';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';

const PLUGIN = 'secret-no-server';
const ROUNDS = 4;

/**
 * The host is SIGKILLed while an admin keeps writing a secret, then started again on the same
 * DATA_DIR: the store must open, and hold the last acknowledged value or the one in flight.
 * The plugin has no server, so the killed host leaves no child behind.
 */
describe('a host killed in the middle of secret writes', () => {
  const key = randomBytes(32);
  let dataDir: string;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let host: PorticoProcess | undefined;

  const start = (): Promise<PorticoProcess> =>
    startPorticoProcess(plugins.dir, { dataDir, env: { SECRETS_KEY: key.toString('base64') } });

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-crash-'));
    plugins = pluginsDirWith([PLUGIN]);
  });

  afterAll(async () => {
    await host?.stop();
    plugins.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('never loses an acknowledged value and never leaves a corrupt store', async () => {
    let serial = 0;
    for (let round = 0; round < ROUNDS; round++) {
      host = await start();
      const h = host;
      let done = 0;
      let acknowledged: string | undefined;
      let inFlight: string | undefined;
      let dead = false;
      // Sequential writes (one in flight at a time), killed after a varying number of them.
      const writer = (async () => {
        while (!dead) {
          const value = `value-${String(++serial).padStart(6, '0')}-${'x'.repeat(40)}`;
          inFlight = value;
          const res = await http(h.baseUrl, 'PUT', `/api/plugins/${PLUGIN}/secrets/COUNTER`, {
            token: h.adminToken(),
            body: { value },
          }).catch(() => undefined);
          if (res === undefined) return; // the host died under this request
          if (res.status !== 204) throw new Error(`PUT answered ${res.status}`);
          acknowledged = value;
          done += 1;
        }
      })();
      const killAfter = 10 + round * 15;
      while (done < killAfter) await new Promise((r) => setTimeout(r, 1));
      await h.kill();
      dead = true;
      await writer;

      const store = new FileSecretStore(join(dataDir, 'secrets.enc.json'), new SecretCipher(key));
      expect(() => store.load()).not.toThrow();
      const value = store.read(PLUGIN, 'COUNTER');
      expect(value).toBeDefined();
      expect([acknowledged, inFlight]).toContain(value);
    }

    // The restarted host opens the store and reports the value as set.
    host = await start();
    const view = await http(host.baseUrl, 'GET', `/api/plugins/${PLUGIN}`, {
      token: host.token(),
    });
    expect(view.json).toMatchObject({
      secrets: [{ key: 'COUNTER', set: true, source: 'store' }],
    });
  }, 120_000);
});
