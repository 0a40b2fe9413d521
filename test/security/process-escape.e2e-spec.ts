import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { startTestApp, TestApp } from '../helpers/test-app';
import { isGone, waitFor } from '../helpers/wait';

const PLUGIN = 'setsid-escape';

/** What the fixture reports: its own pid, its setsid grandchild's, and its env-less child's. */
interface Pids {
  pid: number;
  escapee: number | null;
  scrubbed: number | null;
}

interface Host {
  readonly baseUrl: string;
  token(): string;
  adminToken(): string;
}

/** Every pid a test saw, killed at the end whatever happened (a failing test leaves none). */
const seen = new Set<number>();

afterAll(() => {
  for (const pid of seen) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
});

const pidsOf = async (host: Host): Promise<Pids> => {
  const res = await http(host.baseUrl, 'GET', `/api/plugins/${PLUGIN}/rpc/pids`, {
    token: host.token(),
  });
  if (res.status !== 200) throw new Error(`GET /pids answered ${res.status}`);
  return res.json as Pids;
};

/** The running server's pids once its grandchild has escaped (written its pid file). */
const escaped = async (host: Host, notPid?: number): Promise<Pids & { escapee: number }> => {
  const pids = await waitFor(
    async () => {
      const p = await pidsOf(host);
      return p.escapee !== null && p.pid !== notPid ? { ...p, escapee: p.escapee } : undefined;
    },
    20_000,
    'the plugin running with an escaped grandchild',
  );
  seen.add(pids.pid);
  seen.add(pids.escapee);
  return pids;
};

/** The escapee really left the server's process group, session and tree (re-parented). */
const expectEscaped = (pids: Pids & { escapee: number }): void => {
  expect(isGone(pids.escapee)).toBe(false);
  const stat = readFileSync(`/proc/${pids.escapee}/stat`, 'utf8');
  const [, ppid, pgid, sid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  expect([ppid, pgid, sid]).not.toContain(String(pids.pid));
  expect(sid).toBe(String(pids.escapee)); // a session of its own: setsid()
};

describe('processes a plugin started', () => {
  let plugins: ReturnType<typeof pluginsDirWith>;
  let t: TestApp;

  const setEnabled = (enabled: boolean) =>
    http(t.baseUrl, 'PUT', `/api/plugins/${PLUGIN}/enable`, {
      token: t.adminToken(),
      body: { enabled },
    });

  beforeAll(async () => {
    plugins = pluginsDirWith([PLUGIN]);
    t = await startTestApp({ pluginsDir: plugins.dir });
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  it('setsid double-forked grandchild at plugin stop → killed', async () => {
    const pids = await escaped(t);
    expectEscaped(pids);
    expect((await setEnabled(false)).status).toBe(200);
    // The stop is complete when the request returns: nothing is left to wait for.
    expect(isGone(pids.pid)).toBe(true);
    expect(isGone(pids.escapee)).toBe(true);
    await setEnabled(true);
  });

  it('setsid double-forked grandchild when the plugin crashes → killed before the restart', async () => {
    const pids = await escaped(t);
    await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/rpc/crash`, { token: t.token() });
    // The replacement runs only once the crashed server's processes are gone.
    await escaped(t, pids.pid);
    expect(isGone(pids.escapee)).toBe(true);
  });

  it('setsid double-forked grandchild at admin restart → killed before the restart', async () => {
    const pids = await escaped(t);
    const res = await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/restart`, {
      token: t.adminToken(),
    });
    expect(res.status).toBe(202);
    await escaped(t, pids.pid);
    expect(isGone(pids.pid)).toBe(true);
    expect(isGone(pids.escapee)).toBe(true);
  });

  it('detached child with an empty environment (no tag) at plugin stop → killed', async () => {
    const pids = await escaped(t);
    await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/rpc/spawn-scrubbed`, {
      token: t.token(),
    });
    const scrubbed = await waitFor(
      async () => (await pidsOf(t)).scrubbed ?? undefined,
      10_000,
      'the env-less child',
    );
    seen.add(scrubbed);
    expect(isGone(scrubbed)).toBe(false);
    await setEnabled(false);
    expect(isGone(pids.escapee)).toBe(true);
    expect(isGone(scrubbed)).toBe(true);
    await setEnabled(true);
  });
});

describe('processes a plugin started, at host shutdown', () => {
  it('setsid double-forked grandchild at app.close() → killed', async () => {
    const plugins = pluginsDirWith([PLUGIN]);
    const t = await startTestApp({ pluginsDir: plugins.dir });
    let closing: Promise<void> | undefined;
    try {
      const pids = await escaped(t);
      closing = t.close();
      await closing;
      expect(isGone(pids.pid)).toBe(true);
      expect(isGone(pids.escapee)).toBe(true);
    } finally {
      await (closing ?? t.close());
      plugins.remove();
    }
  });

  it('setsid double-forked grandchild at SIGTERM to the host process → killed', async () => {
    const plugins = pluginsDirWith([PLUGIN]);
    const host = await startPorticoProcess(plugins.dir);
    let stopping: Promise<void> | undefined;
    try {
      const pids = await escaped(host);
      stopping = host.stop();
      await stopping;
      expect(isGone(pids.pid)).toBe(true);
      expect(isGone(pids.escapee)).toBe(true);
    } finally {
      await (stopping ?? host.stop());
      plugins.remove();
    }
  }, 60_000);

  it('setsid double-forked grandchild of a host killed with SIGKILL → killed at the next start', async () => {
    const plugins = pluginsDirWith([PLUGIN]);
    const dataDir = mkdtempSync(join(tmpdir(), 'portico-escape-'));
    let host: PorticoProcess | undefined;
    try {
      host = await startPorticoProcess(plugins.dir, { dataDir });
      const before = await escaped(host);
      await host.kill();
      host = undefined;
      // No shutdown hook ran: the plugin and its grandchild outlive the host.
      expect(isGone(before.pid)).toBe(false);
      expect(isGone(before.escapee)).toBe(false);
      host = await startPorticoProcess(plugins.dir, { dataDir });
      await escaped(host, before.pid);
      expect(isGone(before.pid)).toBe(true);
      expect(isGone(before.escapee)).toBe(true);
    } finally {
      await host?.stop();
      plugins.remove();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('plugin supervision', () => {
  it('running plugin crashed by its users more often than maxFailedStarts → restarted, never failed', async () => {
    const plugins = pluginsDirWith([PLUGIN]); // maxFailedStarts: 2
    const t = await startTestApp({ pluginsDir: plugins.dir });
    try {
      let pids = await escaped(t);
      for (let i = 0; i < 5; i++) {
        await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/rpc/crash`, { token: t.token() });
        pids = await escaped(t, pids.pid);
      }
      const view = (await http(t.baseUrl, 'GET', `/api/plugins/${PLUGIN}`, { token: t.token() }))
        .json as { status: string; restarts: number };
      expect(view).toMatchObject({ status: 'running', restarts: 5 });
    } finally {
      await t.close();
      plugins.remove();
    }
  }, 60_000);
});
