import { resolve } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';
import { open } from '../helpers/ws-client';

const SPY = resolve(__dirname, '../fixtures/preload/als-spy.js');
const SPY_MARK = 'ALS_SPY: AsyncLocalStorage in use';

/**
 * Request logging, in a host process of its own at LOG_LEVEL=info: every request gets one JSON
 * line without its credentials, and nothing in the host runs an AsyncLocalStorage (on Node 20
 * that would turn async hooks on process-wide and tax every relayed WebSocket write).
 */
describe('request logging', () => {
  let p: PorticoProcess;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    p = await startPorticoProcess(plugins.dir, {
      env: { LOG_LEVEL: 'info', NODE_OPTIONS: `--require ${SPY}` },
      capture: true,
    });
  }, 60_000);

  afterAll(async () => {
    await p?.stop();
    plugins?.remove();
  });

  const requestLines = (): {
    req: { method: string; url: string };
    res: { statusCode: number };
  }[] =>
    p
      .output()
      .split('\n')
      .filter((line) => line.includes('"request completed"'))
      .map(
        (line) =>
          JSON.parse(line) as { req: { method: string; url: string }; res: { statusCode: number } },
      );

  it('logs each request once, with its status and without credentials', async () => {
    const token = p.token();
    expect((await http(p.baseUrl, 'GET', '/api/plugins', { token })).status).toBe(200);
    expect((await http(p.baseUrl, 'GET', '/api/plugins/nope')).status).toBe(401);
    await waitFor(() => requestLines().some((l) => l.req.url === '/api/plugins/nope'), 5_000);
    const lines = requestLines();
    expect(lines.filter((l) => l.req.url === '/api/plugins')).toHaveLength(1);
    expect(lines.find((l) => l.req.url === '/api/plugins')?.res.statusCode).toBe(200);
    expect(lines.find((l) => l.req.url === '/api/plugins/nope')?.res.statusCode).toBe(401);
    expect(p.output()).not.toContain(token);
  });

  it('logs probes and scrapes (/healthz, /readyz, /metrics) at debug only, not at info', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/readyz?x=1'])
      expect((await http(p.baseUrl, 'GET', path)).status).toBe(200);
    const token = p.token();
    expect((await http(p.baseUrl, 'GET', '/api/plugins/echo', { token })).status).toBe(200);
    await waitFor(() => requestLines().some((l) => l.req.url === '/api/plugins/echo'), 5_000);
    const probeLines = p
      .output()
      .split('\n')
      .filter((l) => /"url":"\/(healthz|readyz|metrics)/.test(l));
    expect(probeLines).toEqual([]);
  });

  it('never runs an AsyncLocalStorage, across HTTP requests and relayed WebSockets', async () => {
    // The spy is in place (it would report the first use).
    expect(p.output()).toContain('ALS_SPY: loaded');
    expect((await http(p.baseUrl, 'GET', '/readyz')).status).toBe(200);
    const conn = await open(`${p.wsUrl}/plugin-ws/echo?token=${p.token()}`);
    conn.ws.send('hello');
    expect((await conn.next()).data.toString()).toBe('hello');
    conn.ws.close();
    await conn.closed;
    expect(p.output()).not.toContain(SPY_MARK);
  });
});
