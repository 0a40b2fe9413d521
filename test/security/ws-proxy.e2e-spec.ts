import { mintToken } from '../../scripts/lib/token-minter';
import { TokenVerifier } from '../../src/auth/token-verifier.service';
import { PluginUpstreams } from '../../src/plugins/proxy/plugin-upstreams';
import { UPSTREAM_DIALER, UpstreamDialer } from '../../src/plugins/proxy/upstream-dialer';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import {
  closeCodeOf,
  headDone,
  rawConnect,
  rawFrame,
  serverFrames,
  statusOf,
  upgradeRequest,
} from '../helpers/raw-ws';
import { startTestApp, TEST_JWT_SECRET, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect, open, WsConnection } from '../helpers/ws-client';

interface Seen {
  url: string;
  headers: Record<string, string>;
}

/**
 * Hostile and faulty WebSocket clients against the proxy (issue 9, findings 3, 4 and 10). The
 * `headers` fixture is a naive plugin on purpose: its `ws` server has no 'error' listener, so any
 * frame `ws` rejects would crash it for every user. Portico must stop such frames first.
 */
describe('WebSocket proxy, hostile clients', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const conns: WsConnection[] = [];
  const url = (path: string): string => `${t.wsUrl}${path}`;
  const track = (c: WsConnection): WsConnection => {
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    plugins = pluginsDirWith(['headers', 'big-frames', 'dies-mid-frame']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterEach(() => {
    for (const c of conns.splice(0)) c.ws.terminate();
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  const restartsOf = async (name: string): Promise<number> =>
    (
      (await http(t.baseUrl, 'GET', `/api/plugins/${name}`, { token: t.token() })).json as {
        restarts: number;
      }
    ).restarts;

  /** Opens a raw WebSocket to the headers plugin and waits for its first (hello) message. */
  async function rawSession(): Promise<ReturnType<typeof rawConnect>> {
    const ex = rawConnect(
      t.port,
      upgradeRequest(t.port, '/plugin-ws/headers', [`Authorization: Bearer ${t.token()}`]),
    );
    await ex.until((d) => headDone(d) && serverFrames(d).length > 0);
    expect(statusOf(ex.received())).toBe(101);
    return ex;
  }

  describe('frames that break RFC 6455', () => {
    it.each([
      ['an unmasked frame', rawFrame(0x1, Buffer.from('hi'), { masked: false })],
      ['RSV1 set with no extension negotiated', rawFrame(0x1, Buffer.from('hi'), { rsv: 4 })],
      ['reserved opcode 0x3', rawFrame(0x3, Buffer.from('hi'))],
      ['a 126-byte ping', rawFrame(0x9, Buffer.alloc(126))],
      ['a fragmented ping', rawFrame(0x9, Buffer.from('p'), { fin: false })],
      ['a continuation frame with no message', rawFrame(0x0, Buffer.from('hi'))],
      ['a close frame with code 1005', rawFrame(0x8, Buffer.from([0x03, 0xed]))],
      ['a close frame with a 1-byte payload', rawFrame(0x8, Buffer.from([0x03]))],
      ['a close reason that is not UTF-8', rawFrame(0x8, Buffer.from([0x03, 0xe8, 0xc3, 0x28]))],
      [
        'a new message inside a fragmented one',
        Buffer.concat([
          rawFrame(0x1, Buffer.from('a'), { fin: false }),
          rawFrame(0x1, Buffer.from('b')),
        ]),
      ],
    ])('%s → client closed with 1002, plugin keeps running for others', async (_case, bad) => {
      const before = await restartsOf('headers');
      const other = track(
        await open(url('/plugin-ws/headers'), { token: t.token({ sub: 'bob' }) }),
      );
      await other.next();
      const ex = await rawSession();
      ex.socket.write(bad);
      const data = await ex.closed;
      expect(closeCodeOf(data)).toBe(1002);
      other.ws.send('still here');
      expect((await other.next()).data.toString()).toBe('still here');
      expect(await restartsOf('headers')).toBe(before);
    });

    it('five bad clients in a row → plugin never restarts, never failed', async () => {
      const before = await restartsOf('headers');
      for (let i = 0; i < 5; i++) {
        const ex = await rawSession();
        ex.socket.write(rawFrame(0x2, Buffer.from('x'), { masked: false }));
        expect(closeCodeOf(await ex.closed)).toBe(1002);
      }
      const view = (await http(t.baseUrl, 'GET', '/api/plugins/headers', { token: t.token() }))
        .json as { status: string; restarts: number };
      expect(view).toMatchObject({ status: 'running', restarts: before });
    });
  });

  describe('handshake requests', () => {
    it.each([
      ['/plugin-ws/headers/../../admin', 400],
      ['/plugin-ws/headers/%2e%2e/%2E%2E/admin', 400],
      ['/plugin-ws/headers/a/..%2f..%2fadmin', 400],
      ['/plugin-ws/headers/..\\..\\admin', 400],
    ])('sub-path %s climbing out of /ws → HTTP %i, plugin never asked', async (path, status) => {
      const ex = rawConnect(
        t.port,
        upgradeRequest(t.port, path, [`Authorization: Bearer ${t.token()}`]),
      );
      expect(statusOf(await ex.closed)).toBe(status);
      const upgrades = (
        await http(t.baseUrl, 'GET', '/api/plugins/headers/rpc/upgrades', {
          token: t.token(),
        })
      ).json as Seen[];
      expect(upgrades.some((u) => u.url.includes('admin'))).toBe(false);
    });

    it('dot segments that stay inside → normalised under /ws', async () => {
      const ex = rawConnect(
        t.port,
        upgradeRequest(t.port, '/plugin-ws/headers/a/./b/%2E%2e/c?x=1', [
          `Authorization: Bearer ${t.token()}`,
        ]),
      );
      const data = await ex.until((d) => headDone(d) && serverFrames(d).length > 0);
      ex.socket.destroy();
      const hello = JSON.parse(serverFrames(data)[0]?.payload.toString() ?? '{}') as Seen;
      expect(hello.url).toBe('/ws/a/c?x=1');
    });

    it.each(['POST', 'PUT'])('%s with Upgrade: websocket → 405, no 101', async (method) => {
      const ex = rawConnect(
        t.port,
        upgradeRequest(
          t.port,
          '/plugin-ws/headers',
          [`Authorization: Bearer ${t.token()}`],
          method,
        ),
      );
      const data = await ex.closed;
      expect(statusOf(data)).toBe(405);
      expect(data.toString('latin1')).toMatch(/\r\nAllow: GET\r\n/);
    });

    /** Handshakes no WebSocket server may accept (RFC 6455 §4.2.1): refused before the plugin is dialled. */
    const handshakesOf = async (): Promise<number> => {
      const metrics = (await http(t.baseUrl, 'GET', '/metrics')).body.toString();
      const line = metrics
        .split('\n')
        .find((l) => l.startsWith('portico_ws_handshakes_total{plugin="headers",outcome="4502"}'));
      return Number(line?.split(' ')[1] ?? 0);
    };
    const valid = (): string =>
      upgradeRequest(t.port, '/plugin-ws/headers', [`Authorization: Bearer ${t.token()}`]).toString(
        'latin1',
      );

    it.each([
      ['HTTP/1.0', (r: string) => r.replace(' HTTP/1.1\r\n', ' HTTP/1.0\r\n'), 400],
      ['no Sec-WebSocket-Key', (r: string) => r.replace(/Sec-WebSocket-Key: [^\r]*\r\n/, ''), 400],
      [
        'two Sec-WebSocket-Key headers',
        (r: string) => r.replace(/(Sec-WebSocket-Key: [^\r]*\r\n)/, '$1$1'),
        400,
      ],
      [
        'Sec-WebSocket-Version: 8',
        (r: string) => r.replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8'),
        426,
      ],
    ])('%s → HTTP %i, no 101, plugin never dialled', async (_name, edit, status) => {
      const before = await handshakesOf();
      const ex = rawConnect(t.port, Buffer.from(edit(valid()), 'latin1'));
      const data = await ex.closed;
      expect(statusOf(data)).toBe(status);
      const text = data.toString('latin1');
      expect(text).toContain('"statusCode":');
      if (status === 426) expect(text).toContain('\r\nSec-WebSocket-Version: 13\r\n');
      // The plugin never saw it: no 4502 for a client's own mistake.
      expect(await handshakesOf()).toBe(before);
    });

    it('an upgrade announcing a body (Content-Length) → 400, no 101', async () => {
      const ex = rawConnect(
        t.port,
        upgradeRequest(t.port, '/plugin-ws/headers', [
          `Authorization: Bearer ${t.token()}`,
          'Content-Length: 40',
        ]),
      );
      expect(statusOf(await ex.closed)).toBe(400);
    });

    it('identity and address headers spelled with underscores, X-Real-IP → never reach the plugin', async () => {
      const ex = rawConnect(
        t.port,
        upgradeRequest(t.port, '/plugin-ws/headers', [
          `Authorization: Bearer ${t.token({ sub: 'alice' })}`,
          'x_plugin_user_id: mallory',
          'X_Plugin_User_Roles: admin',
          'x_forwarded_for: 6.6.6.6',
          'X-Real-IP: 6.6.6.6',
          'x_real_ip: 6.6.6.6',
          'True-Client-IP: 6.6.6.6',
          'Connection: Upgrade, Content-Length, Sec-WebSocket-Key',
        ]),
      );
      const data = await ex.until((d) => headDone(d) && serverFrames(d).length > 0);
      ex.socket.destroy();
      expect(statusOf(data)).toBe(101);
      const hello = JSON.parse(serverFrames(data)[0]?.payload.toString() ?? '{}') as Seen;
      const names = Object.keys(hello.headers);
      expect(names.filter((n) => /^x_|real-ip|true-client/i.test(n))).toEqual([]);
      expect(hello.headers['x-plugin-user-id']).toBe('alice');
      expect(hello.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(JSON.stringify(hello)).not.toContain('6.6.6.6');
    });
  });

  describe('message size, either way', () => {
    it('permessage-deflate offered → not negotiated, so the limit counts real bytes', async () => {
      const c = track(
        await open(url('/plugin-ws/headers'), { token: t.token(), perMessageDeflate: true }),
      );
      const hello = JSON.parse((await c.next()).data.toString()) as Seen;
      expect(c.ws.extensions).toBe('');
      expect(hello.headers['sec-websocket-extensions']).toBeUndefined();
    });

    it('a highly compressible 2 MiB message to a 1 MiB plugin → 1009', async () => {
      const c = track(
        await open(url('/plugin-ws/big-frames'), { token: t.token(), perMessageDeflate: true }),
      );
      c.ws.send(Buffer.alloc(2 * 1024 * 1024));
      expect((await c.closed).code).toBe(1009);
    });

    it('the plugin sending more than maxMessageBytes → client closed with 1009, nothing partial', async () => {
      const c = track(await open(url('/plugin-ws/big-frames'), { token: t.token() }));
      c.ws.send(`send:${1024 * 1024 + 1}`);
      expect((await c.closed).code).toBe(1009);
      expect(c.received).toEqual([]);
    });
  });

  it('plugin killed in the middle of a message → client connection reset (1006), no partial message', async () => {
    const c = track(await open(url('/plugin-ws/dies-mid-frame'), { token: t.token() }));
    c.ws.send('die');
    expect((await c.closed).code).toBe(1006);
    expect(c.received).toEqual([]);
  });

  describe('a bug behind the upgrade router never ends the host', () => {
    // On Node 20 an unhandled rejection ends the process; each of these would be one without
    // the router's catch-all. The host must answer 500 to that client and keep serving.
    const stillServing = async (): Promise<void> => {
      const c = track(await open(url('/plugin-ws/headers'), { token: t.token() }));
      expect(JSON.parse((await c.next()).data.toString())).toMatchObject({
        headers: { 'x-plugin-user-id': 'alice' },
      });
    };

    /** Each case makes one dependency of the router fail once, in its own way. */
    const breakages: [string, () => jest.SpyInstance][] = [
      [
        'the upstream lookup throws',
        () =>
          jest.spyOn(t.app.get(PluginUpstreams), 'upstream').mockImplementationOnce(() => {
            throw new TypeError('simulated bug');
          }),
      ],
      [
        'the upstream dialer throws synchronously',
        () =>
          jest
            .spyOn(t.app.get<UpstreamDialer>(UPSTREAM_DIALER), 'dial')
            .mockImplementationOnce(() => {
              throw new RangeError('simulated bug');
            }),
      ],
      [
        'token verification rejects with a non-auth error',
        () =>
          jest
            .spyOn(t.app.get(TokenVerifier), 'verify')
            .mockRejectedValueOnce(new TypeError('simulated bug')),
      ],
    ];

    it.each(breakages)('%s → HTTP 500 for that client, host unharmed', async (_what, breakOnce) => {
      const spy = breakOnce();
      try {
        const result = await connect(url('/plugin-ws/headers'), { token: t.token() });
        expect(result).toMatchObject({ kind: 'rejected', status: 500 });
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
      await stillServing();
    });
  });

  describe('sessions end with their credentials', () => {
    it('token expires while connected → closed with 4401 "token expired"', async () => {
      // Issued already expired but inside the 30 s clock tolerance: accepted, then ends ~2 s later.
      const token = mintToken(TEST_JWT_SECRET, { sub: 'eve', expiresInSeconds: -28 });
      const c = track(await open(url('/plugin-ws/headers'), { token }));
      await c.next();
      expect(await c.closed).toEqual({ code: 4401, reason: 'token expired' });
    });

    it('admin restricts the plugin to a role the user lacks → closed with 4403; others stay', async () => {
      const alice = track(await open(url('/plugin-ws/headers'), { token: t.token() }));
      const ops = track(
        await open(url('/plugin-ws/headers'), { token: t.token({ sub: 'oscar', roles: ['ops'] }) }),
      );
      await alice.next();
      await ops.next();
      const put = await http(t.baseUrl, 'PUT', '/api/plugins/headers/access', {
        token: t.adminToken(),
        body: { roles: ['ops'] },
      });
      expect(put.status).toBe(200);
      try {
        expect((await alice.closed).code).toBe(4403);
        ops.ws.send('still allowed');
        expect((await ops.next()).data.toString()).toBe('still allowed');
      } finally {
        await http(t.baseUrl, 'PUT', '/api/plugins/headers/access', {
          token: t.adminToken(),
          body: { roles: [] },
        });
      }
    });
  });
});
