import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { isGone, waitFor } from '../helpers/wait';

interface View {
  name: string;
  status: string;
  restarts: number;
  lastError?: string;
}

const PLUGINS = [
  'never-ready',
  'crash-at-start',
  'crash-later',
  'garbage-before-ready',
  'ignore-sigterm',
  'grandchild',
  'env-dump',
  'stdout-spam',
  'slow-ready',
];

describe('plugin process supervision (real subprocesses)', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  const view = async (name: string): Promise<View> =>
    (await http(t.baseUrl, 'GET', `/api/plugins/${name}`, { token: t.token() })).json as View;
  const statusOf = async (name: string): Promise<string> => (await view(name)).status;
  const rpc = async (name: string, path: string, method = 'GET'): Promise<unknown> =>
    (await http(t.baseUrl, method, `/api/plugins/${name}/rpc${path}`, { token: t.token() })).json;
  const waitStatus = (name: string, status: string, ms = 10_000): Promise<true> =>
    waitFor(async () => (await statusOf(name)) === status, ms, `${name} to be ${status}`);
  /** The newest `tail` lines of the plugin's output, oldest first. */
  const logLines = async (name: string, tail: number): Promise<string[]> => {
    const res = await http(t.baseUrl, 'GET', `/api/plugins/${name}/logs?tail=${tail}`, {
      token: t.adminToken(),
    });
    return (res.json as { lines: { line: string }[] }).lines.map((l) => l.line);
  };

  beforeAll(async () => {
    plugins = pluginsDirWith(PLUGINS);
    t = await startTestApp({ pluginsDir: plugins.dir });
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  it('finds the ready line after garbage output', async () => {
    await waitStatus('garbage-before-ready', 'running');
    expect((await view('garbage-before-ready')).restarts).toBe(0);
    // The port came from the real ready line (not from `"port":"1"` in the garbage before it).
    expect(await rpc('garbage-before-ready', '/health')).toEqual({ ok: true });
    const lines = await logLines('garbage-before-ready', 50);
    const ready = lines.findIndex((l) => /^\{"ready":true,"port":\d+\}$/.test(l));
    expect(lines.indexOf('{"hello":1}')).toBeGreaterThanOrEqual(0);
    expect(lines.indexOf('{"hello":1}')).toBeLessThan(ready);
    expect(lines.indexOf('a partial line completed later')).toBeLessThan(ready);
  });

  it('is not ready while a plugin found at startup is starting, then ready', async () => {
    // A host of its own, asked at once: slow-ready takes 1.5 s to print its ready line.
    const only = pluginsDirWith(['slow-ready']);
    const own = await startTestApp({ pluginsDir: only.dir });
    try {
      const first = await http(own.baseUrl, 'GET', '/readyz');
      expect(first.status).toBe(503);
      expect(first.json).toMatchObject({
        status: 'error',
        details: { plugins: { status: 'down', starting: ['slow-ready'] } },
      });
      const ready = await waitFor(async () => {
        const res = await http(own.baseUrl, 'GET', '/readyz');
        return res.status === 200 && res;
      });
      expect(ready.json).toMatchObject({ status: 'ok', info: { plugins: { status: 'up' } } });
    } finally {
      await own.close();
      only.remove();
    }
  });

  it('stays ready while a plugin is started again later (enable, restart): one plugin is not the host', async () => {
    await waitStatus('slow-ready', 'running');
    const off = await http(t.baseUrl, 'PUT', '/api/plugins/slow-ready/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    expect(off.status).toBe(200);
    // Enabling spawns the server at once, so the answer already says `starting`; the host stays
    // ready (its other plugins serve; every replica restarting it would otherwise all drop out).
    const on = await http(t.baseUrl, 'PUT', '/api/plugins/slow-ready/enable', {
      token: t.adminToken(),
      body: { enabled: true },
    });
    expect((on.json as View).status).toBe('starting');
    expect((await http(t.baseUrl, 'GET', '/readyz')).status).toBe(200);
    const restart = await http(t.baseUrl, 'POST', '/api/plugins/slow-ready/restart', {
      token: t.adminToken(),
    });
    expect(restart.status).toBeLessThan(300);
    expect((await http(t.baseUrl, 'GET', '/readyz')).status).toBe(200);
    await waitStatus('slow-ready', 'running');
  });

  it('gives up on a server that never gets ready: failed, with the reason', async () => {
    await waitStatus('never-ready', 'failed', 15_000);
    const v = await view('never-ready');
    expect(v.lastError).toMatch(/not ready within 500 ms/);
    expect(v.restarts).toBe(1);
  });

  it('restarts a server that crashes at start, then marks it failed', async () => {
    await waitStatus('crash-at-start', 'failed', 15_000);
    const v = await view('crash-at-start');
    expect(v.lastError).toMatch(/exited before ready with code 3.*gave up after 3/);
    expect(v.restarts).toBe(2);
    const logs = await http(t.baseUrl, 'GET', '/api/plugins/crash-at-start/logs?tail=50', {
      token: t.adminToken(),
    });
    const lines = (logs.json as { lines: { stream: string; line: string }[] }).lines;
    expect(lines.filter((l) => l.stream === 'stderr').length).toBeGreaterThanOrEqual(3);
  });

  it('an admin restart clears failed', async () => {
    await waitStatus('crash-at-start', 'failed', 15_000);
    const res = await http(t.baseUrl, 'POST', '/api/plugins/crash-at-start/restart', {
      token: t.adminToken(),
    });
    expect(res.status).toBe(202);
    expect((res.json as View).status).not.toBe('failed');
    await waitStatus('crash-at-start', 'failed', 15_000);
  });

  it('restarts a server that crashes later, with a new process', async () => {
    await waitStatus('crash-later', 'running');
    const before = (await rpc('crash-later', '/pid')) as { pid: number };
    await http(t.baseUrl, 'POST', '/api/plugins/crash-later/rpc/crash', { token: t.token() });
    await waitFor(async () => {
      const v = await view('crash-later');
      return v.status === 'running' && v.restarts === 1;
    });
    const after = (await rpc('crash-later', '/pid')) as { pid: number };
    expect(after.pid).not.toBe(before.pid);
    expect(isGone(before.pid)).toBe(true);
  });

  it('gives the server only the minimal environment', async () => {
    await waitStatus('env-dump', 'running');
    const env = (await rpc('env-dump', '/env')) as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual([
      'HOME',
      'NODE_ENV',
      'PATH',
      'PLUGIN_DATA_DIR',
      'PLUGIN_IDENTITY_SECRET',
      'PLUGIN_NAME',
      'PORTICO_PLUGIN_TAG',
    ]);
    expect(env.PLUGIN_NAME).toBe('env-dump');
    // A fresh random value per spawn, by which Portico finds what left the process group.
    expect(env.PORTICO_PLUGIN_TAG).toMatch(/^[0-9a-f]{32}$/);
    expect(env.PLUGIN_IDENTITY_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(env.PLUGIN_IDENTITY_SECRET).not.toContain(t.config.JWT_SECRET);
  });

  it('keeps the last lines of output for the logs API', async () => {
    await waitStatus('stdout-spam', 'running');
    // Everything it prints after ready (stdout and stderr come through separate pipes).
    const all = await waitFor(
      async () => {
        const lines = await logLines('stdout-spam', 1000);
        return lines.includes('line 100') && lines.includes('err 10') && lines;
      },
      10_000,
      "all of stdout-spam's output",
    );
    expect(all.filter((l) => /^line \d+$/.test(l))).toHaveLength(100);
    expect(all.filter((l) => /^err \d+$/.test(l))).toHaveLength(10);
    expect(await logLines('stdout-spam', 3)).toEqual(all.slice(-3));
  });

  it('kills a server that ignores SIGTERM after the grace period', async () => {
    await waitStatus('ignore-sigterm', 'running');
    const res = await http(t.baseUrl, 'PUT', '/api/plugins/ignore-sigterm/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    expect(res.status).toBe(200);
    expect((res.json as View).status).toBe('disabled');
    const logs = await http(t.baseUrl, 'GET', '/api/plugins/ignore-sigterm/logs?tail=5', {
      token: t.adminToken(),
    });
    const text = JSON.stringify(logs.json);
    expect(text).toContain('SIGKILL');
  }, 20_000);

  it('stops the whole process group, grandchildren included', async () => {
    await waitStatus('grandchild', 'running');
    const pids = (await rpc('grandchild', '/pids')) as { pid: number; grandchild: number };
    expect(isGone(pids.grandchild)).toBe(false);
    await http(t.baseUrl, 'PUT', '/api/plugins/grandchild/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    await waitFor(() => isGone(pids.pid) && isGone(pids.grandchild), 10_000, 'both pids gone');
  });

  it('shares one start between concurrent enable requests', async () => {
    await http(t.baseUrl, 'PUT', '/api/plugins/grandchild/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    const before = (await view('grandchild')).restarts;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        http(t.baseUrl, 'PUT', '/api/plugins/grandchild/enable', {
          token: t.adminToken(),
          body: { enabled: true },
        }),
      ),
    );
    await waitStatus('grandchild', 'running');
    expect((await view('grandchild')).restarts).toBe(before + 1);
  });
});

describe('host shutdown', () => {
  it('leaves no plugin process behind', async () => {
    const plugins = pluginsDirWith(['grandchild', 'ignore-sigterm', 'crash-later']);
    const t = await startTestApp({ pluginsDir: plugins.dir });
    let closed = false;
    try {
      await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
      const pids = (
        await http(t.baseUrl, 'GET', '/api/plugins/grandchild/rpc/pids', { token: t.token() })
      ).json as { pid: number; grandchild: number };
      const crash = (
        await http(t.baseUrl, 'GET', '/api/plugins/crash-later/rpc/pid', { token: t.token() })
      ).json as { pid: number };
      for (const pid of [pids.pid, pids.grandchild, crash.pid]) expect(isGone(pid)).toBe(false);
      closed = true;
      await t.close();
      for (const pid of [pids.pid, pids.grandchild, crash.pid]) expect(isGone(pid)).toBe(true);
    } finally {
      if (!closed) await t.close();
      plugins.remove();
    }
  }, 20_000);
});
