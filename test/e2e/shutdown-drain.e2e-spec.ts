import { request } from 'node:http';

import { pluginsDirWith } from '../helpers/plugins-dir';
import { startPorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';

describe('host shutdown is bounded by SHUTDOWN_GRACE_MS, HTTP requests included', () => {
  it('an RPC upload still streaming at SIGTERM is cut after the grace, and plugins stop in order', async () => {
    const plugins = pluginsDirWith(['bundled:echo']);
    const host = await startPorticoProcess(plugins.dir, {
      env: { SHUTDOWN_GRACE_MS: '1000', LOG_LEVEL: 'info' },
      capture: true,
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      // A client that never finishes its body: one chunk every 100 ms, for as long as it can.
      const req = request({
        host: '127.0.0.1',
        port: host.port,
        method: 'POST',
        path: '/api/plugins/echo/rpc/echo',
        headers: { authorization: `Bearer ${host.token()}`, 'transfer-encoding': 'chunked' },
      });
      let echoed = 0;
      const ended = new Promise<string>((resolve) => {
        req.on('error', (err) => resolve(`error: ${err.message}`));
        req.on('response', (res) => {
          res.on('data', (chunk: Buffer) => (echoed += chunk.length));
          res.on('close', () => resolve('response closed'));
        });
      });
      timer = setInterval(() => req.write('x'), 100);
      // The echo plugin streams the body back as it arrives: the request is in flight end to end.
      await waitFor(() => echoed >= 3, 10_000, 'the upload to be echoed');
      // stop() sends SIGTERM and throws if the host needed a SIGKILL 15 s later.
      await host.stop();
      expect(await ended).toMatch(/error|closed/);
      const log = host.output();
      expect(log).toContain('"event":"shutdown_connections_closed"');
      expect(log).toContain('"event":"stopping_all"');
    } finally {
      clearInterval(timer);
      await host.stop().catch(() => undefined);
      plugins.remove();
    }
  }, 60_000);
});
