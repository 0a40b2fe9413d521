import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { isGone, waitFor } from '../helpers/wait';

interface Pids {
  pid: number;
  grandchild: number;
}

/**
 * A host killed with SIGKILL runs no shutdown hook, and its plugins (in their own process
 * groups) keep running. The next start on the same DATA_DIR must end them before starting the
 * plugins again.
 */
describe('a host killed with SIGKILL', () => {
  let dataDir: string;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let host: PorticoProcess | undefined;
  const leftovers: number[] = [];

  const pidsOf = async (h: PorticoProcess): Promise<Pids> => {
    let pids: Pids | undefined;
    await waitFor(
      async () => {
        const res = await http(h.baseUrl, 'GET', '/api/plugins/grandchild/rpc/pids', {
          token: h.token(),
        });
        pids = res.status === 200 ? (res.json as Pids) : undefined;
        return pids !== undefined;
      },
      15_000,
      'grandchild plugin running',
    );
    return pids as Pids;
  };

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-hostcrash-'));
    plugins = pluginsDirWith(['grandchild']);
  });

  afterAll(async () => {
    await host?.stop();
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone, as it should be
      }
    }
    plugins.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('leaves plugins running, and the next start ends them before starting new ones', async () => {
    const first = await startPorticoProcess(plugins.dir, { dataDir });
    host = first;
    const before = await pidsOf(first);
    leftovers.push(before.pid, before.grandchild);

    await first.kill();
    host = undefined;
    // Nothing ran on the host's side: both processes outlive it.
    expect(isGone(before.pid)).toBe(false);
    expect(isGone(before.grandchild)).toBe(false);

    host = await startPorticoProcess(plugins.dir, { dataDir });
    await waitFor(
      () => isGone(before.pid) && isGone(before.grandchild),
      10_000,
      'processes of the killed host to be ended',
    );
    const after = await pidsOf(host);
    expect(after.pid).not.toBe(before.pid);
    expect(isGone(after.pid)).toBe(false);
  }, 90_000);
});
