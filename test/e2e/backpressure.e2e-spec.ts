import { WebSocket } from 'ws';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';

const GIB = 1024 * 1024 * 1024;
const MIB = 1024 * 1024;
/** Issue 3: the host's RSS may not grow more than this while a peer does not read. */
const RSS_GROWTH_LIMIT = 64 * MIB;
const STALL_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function openRaw(p: PorticoProcess): Promise<WebSocket> {
  const ws = new WebSocket(`${p.wsUrl}/plugin-ws/flood`, {
    headers: { authorization: `Bearer ${p.token()}` },
    maxPayload: 4 * MIB,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe('backpressure through the relay (host in its own process)', () => {
  let p: PorticoProcess;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['flood']);
    p = await startPorticoProcess(plugins.dir);
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    plugins.remove();
  });

  it('a client that stops reading while the plugin sends 1 GiB keeps host memory bounded, and then gets every byte', async () => {
    const ws = await openRaw(p);
    let bytes = 0;
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) bytes += data.length;
        else if (data.toString() === 'done') resolve();
      }),
    );
    const base = p.rss();
    ws.pause();
    ws.send(`flood:${GIB}`);
    let peak = base;
    for (let waited = 0; waited < STALL_MS; waited += 100) {
      await sleep(100);
      peak = Math.max(peak, p.rss());
    }
    expect(peak - base).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(bytes).toBe(0);

    ws.resume();
    const sampler = setInterval(() => (peak = Math.max(peak, p.rss())), 50);
    await done;
    clearInterval(sampler);
    expect(bytes).toBe(GIB);
    expect(peak - base).toBeLessThan(RSS_GROWTH_LIMIT);
    ws.close();
  }, 120_000);

  it('a plugin that stops reading while a client sends 1 GiB keeps host memory bounded, and then gets every byte', async () => {
    const before = (
      (
        await http(p.baseUrl, 'GET', '/api/plugins/flood/rpc/received', {
          token: p.token(),
        })
      ).json as { bytes: number }
    ).bytes;
    const ws = await openRaw(p);
    ws.send('stall');
    await sleep(100);
    const chunk = Buffer.alloc(MIB, 0x33);
    const base = p.rss();
    let peak = base;
    let sent = 0;
    let resumed = false;
    const started = Date.now();
    let lastSample = 0;
    while (sent < GIB) {
      const now = Date.now();
      if (now - lastSample >= 50) {
        peak = Math.max(peak, p.rss());
        lastSample = now;
      }
      if (!resumed && now - started > STALL_MS) {
        // Stalled for 3 s: the client's own buffer is full, the host held its bound.
        expect(peak - base).toBeLessThan(RSS_GROWTH_LIMIT);
        expect(sent).toBeLessThan(GIB);
        await http(p.baseUrl, 'GET', '/api/plugins/flood/rpc/resume', { token: p.token() });
        resumed = true;
      }
      if (ws.bufferedAmount < 8 * MIB) {
        ws.send(chunk);
        sent += chunk.length;
      } else {
        await sleep(5);
      }
    }
    const received = await waitFor(
      async () => {
        const r = await http(p.baseUrl, 'GET', '/api/plugins/flood/rpc/received', {
          token: p.token(),
        });
        peak = Math.max(peak, p.rss());
        const n = (r.json as { bytes: number }).bytes - before;
        return n >= GIB ? n : undefined;
      },
      60_000,
      'the plugin to receive 1 GiB',
    );
    expect(received).toBe(GIB);
    expect(peak - base).toBeLessThan(RSS_GROWTH_LIMIT);
    ws.close();
  }, 120_000);
});
