import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DATA_DIR_LOCK_FILE } from '../../src/plugins/process/data-dir-lock';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { isGone, waitFor } from '../helpers/wait';

interface Pids {
  pid: number;
  grandchild: number;
}

/** The pid of the host the DATA_DIR lock names. */
const lockHolderPid = (dataDir: string): number =>
  (
    JSON.parse(readFileSync(join(dataDir, DATA_DIR_LOCK_FILE), 'utf8')) as {
      holder: { pid: number };
    }
  ).holder.pid;

/**
 * A host killed with SIGKILL runs no shutdown hook: its plugins (in their own process groups)
 * keep running and its DATA_DIR lock stays. The next start on the same DATA_DIR must take the
 * lock over (its holder is gone) and end those plugins before starting the plugins again.
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
    // Nothing ran on the host's side: both processes outlive it, and so does its lock.
    expect(isGone(before.pid)).toBe(false);
    expect(isGone(before.grandchild)).toBe(false);
    expect(lockHolderPid(dataDir)).toBe(first.pid);

    host = await startPorticoProcess(plugins.dir, { dataDir, capture: true });
    await waitFor(
      () => isGone(before.pid) && isGone(before.grandchild),
      10_000,
      'processes of the killed host to be ended',
    );
    const after = await pidsOf(host);
    expect(after.pid).not.toBe(before.pid);
    expect(isGone(after.pid)).toBe(false);
    // The stale lock was taken over, and that was said once.
    expect(lockHolderPid(dataDir)).toBe(host.pid);
    expect(host.output().split('data_dir_lock_taken_over')).toHaveLength(2);
  }, 120_000);
});
