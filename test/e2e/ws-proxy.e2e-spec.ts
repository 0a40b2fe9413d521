import { createHmac, hkdfSync, randomBytes } from 'node:crypto';

import { WebSocket } from 'ws';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect, open, WsConnection } from '../helpers/ws-client';

const PLUGINS = [
  'bundled:echo',
  'close-codes',
  'headers',
  'refuses-ws',
  'hangs-ws',
  'crash-later',
  'big-frames',
  'no-server',
];

function bearerProtocol(token: string): string {
  return `base64url.bearer.authorization.portico.${Buffer.from(token).toString('base64url')}`;
}

describe('WebSocket proxy /plugin-ws/:name', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const conns: WsConnection[] = [];
  const url = (path: string): string => `${t.wsUrl}${path}`;
  const track = (c: WsConnection): WsConnection => {
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    plugins = pluginsDirWith(PLUGINS);
    t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { WS_UPSTREAM_TIMEOUT_MS: '500' },
    });
    await waitFor(
      async () => {
        const res = await http(t.baseUrl, 'GET', '/readyz');
        return res.status === 200;
      },
      15_000,
      'readiness',
    );
  });

  afterEach(() => {
    for (const c of conns.splice(0)) c.ws.terminate();
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  describe('handshake refusals happen before any 101', () => {
    it('answers 401 without credentials', async () => {
      const r = await connect(url('/plugin-ws/echo'));
      expect(r).toMatchObject({ kind: 'rejected', status: 401 });
    });

    it('answers 401 for an expired token', async () => {
      const r = await connect(url('/plugin-ws/echo'), {
        token: t.token({ expiresInSeconds: -120 }),
      });
      expect(r).toMatchObject({ kind: 'rejected', status: 401 });
    });

    it('answers 401 for a token signed with another key', async () => {
      const forged = t.token().replace(/\.[^.]+$/, '.AAAA');
      const r = await connect(url('/plugin-ws/echo'), { token: forged });
      expect(r).toMatchObject({ kind: 'rejected', status: 401 });
    });

    it('answers 400 for an invalid plugin name', async () => {
      const r = await connect(url('/plugin-ws/bad%20name'), { token: t.token() });
      expect(r).toMatchObject({ kind: 'rejected', status: 400 });
    });

    it('answers 404 for upgrades outside /plugin-ws', async () => {
      const r = await connect(url('/somewhere-else'), { token: t.token() });
      expect(r).toMatchObject({ kind: 'rejected', status: 404 });
    });

    it('answers 403 for a cookie credential from a foreign origin', async () => {
      const r = await connect(url('/plugin-ws/echo'), {
        headers: { cookie: `portico_token=${t.token()}`, origin: 'https://evil.example' },
      });
      expect(r).toMatchObject({ kind: 'rejected', status: 403 });
    });
  });

  describe('an authenticated client whose plugin cannot be reached', () => {
    it.each([
      ['an unknown plugin', 'nope', 4404],
      ['a plugin without a server', 'no-server', 4503],
      ['a plugin refusing the upgrade', 'refuses-ws', 4502],
      ['a plugin that never answers the upgrade', 'hangs-ws', 4504],
    ])('closes %s with a readable code', async (_what, name, code) => {
      const c = track(await open(url(`/plugin-ws/${name}`), { token: t.token() }));
      const closed = await c.closed;
      expect(closed.code).toBe(code);
      expect(closed.reason.length).toBeGreaterThan(0);
    });
  });

  describe('relaying', () => {
    it('delivers 10,000 messages sent right after open, complete and in order', async () => {
      const c = track(await open(url('/plugin-ws/echo'), { token: t.token() }));
      const count = 10_000;
      for (let i = 0; i < count; i++) {
        if (i % 2 === 0) c.ws.send(`msg ${i}`);
        else c.ws.send(Buffer.from(`bin ${i}`), { binary: true });
      }
      await waitFor(() => c.received.length >= count, 20_000, 'all echoes');
      expect(c.received).toHaveLength(count);
      c.received.forEach((m, i) => {
        expect(m.isBinary).toBe(i % 2 === 1);
        expect(m.data.toString()).toBe(i % 2 === 0 ? `msg ${i}` : `bin ${i}`);
      });
    });

    it('round-trips a 16 MiB binary message unchanged', async () => {
      const c = track(await open(url('/plugin-ws/echo'), { token: t.token() }));
      const payload = Buffer.alloc(16 * 1024 * 1024);
      for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
      c.ws.send(payload);
      const echoed = await c.next();
      expect(echoed.isBinary).toBe(true);
      expect(echoed.data.equals(payload)).toBe(true);
    });

    it('passes fragmented messages through as one message', async () => {
      const c = track(await open(url('/plugin-ws/echo'), { token: t.token() }));
      c.ws.send('hel', { fin: false });
      c.ws.send('lo ', { fin: false });
      c.ws.send('world', { fin: true });
      const m = await c.next();
      expect(m.data.toString()).toBe('hello world');
      expect(m.isBinary).toBe(false);
    });

    it('passes ping and pong through both ways', async () => {
      const c = track(await open(url('/plugin-ws/echo'), { token: t.token() }));
      const pong = new Promise<Buffer>((resolve) => c.ws.once('pong', resolve));
      c.ws.ping(Buffer.from('are you there'));
      expect((await pong).toString()).toBe('are you there');
    });

    it('closes a message over maxMessageBytes with 1009', async () => {
      const c = track(await open(url('/plugin-ws/big-frames'), { token: t.token() }));
      c.ws.send(Buffer.alloc(1024 * 1024 + 1));
      expect((await c.closed).code).toBe(1009);
    });

    it('lets a message of exactly maxMessageBytes through', async () => {
      const c = track(await open(url('/plugin-ws/big-frames'), { token: t.token() }));
      c.ws.send(Buffer.alloc(1024 * 1024, 7));
      const m = await c.next();
      expect(m.data.length).toBe(1024 * 1024);
    });
  });

  describe('close codes', () => {
    /** What the close-codes plugin recorded for the connection opened with `?probe=<probe>`. */
    async function closedSession(probe: string): Promise<unknown> {
      return waitFor(async () => {
        const res = await http(t.baseUrl, 'GET', '/api/plugins/close-codes/rpc/closed-sessions', {
          token: t.token(),
        });
        return (res.json as { url: string }[]).find((s) => s.url.includes(`probe=${probe}`));
      });
    }

    it('a token expiring mid-stream closes the client first: every message sent before the close reaches the plugin, in order', async () => {
      const probe = randomBytes(4).toString('hex');
      // Accepted inside the 30 s clock tolerance, then ended by Portico about 2 s later.
      const token = t.token({ expiresInSeconds: -28 });
      const c = track(await open(url(`/plugin-ws/close-codes?probe=${probe}`), { token }));
      let sent = 0;
      // Bursts every millisecond until the close frame arrives (ws leaves OPEN on reading it):
      // when the token expires, messages are in flight between the client and Portico.
      const sending = setInterval(() => {
        for (let i = 0; i < 20 && c.ws.readyState === WebSocket.OPEN; i++)
          c.ws.send(String(sent++));
      }, 1);
      const closed = await c.closed;
      clearInterval(sending);
      expect(closed).toEqual({ code: 4401, reason: 'token expired' });
      expect(sent).toBeGreaterThan(100);
      expect(await closedSession(probe)).toEqual({
        url: `/ws?probe=${probe}`,
        messages: sent,
        inSequence: true,
        code: 4401,
        reason: 'token expired',
      });
    });

    it('passes the client close code and reason to the plugin', async () => {
      const probe = randomBytes(4).toString('hex');
      const c = track(
        await open(url(`/plugin-ws/close-codes?probe=${probe}`), { token: t.token() }),
      );
      c.ws.close(4000, 'client says bye');
      expect(await c.closed).toEqual({ code: 4000, reason: 'client says bye' });
      expect(await closedSession(probe)).toMatchObject({ code: 4000, reason: 'client says bye' });
    });

    it("passes the plugin's close code and reason to the client", async () => {
      const c = track(await open(url('/plugin-ws/close-codes'), { token: t.token() }));
      c.ws.send('close-4001');
      expect(await c.closed).toEqual({ code: 4001, reason: 'bye from plugin' });
    });

    it('closes with 1012 when the plugin process dies and will restart', async () => {
      const c = track(await open(url('/plugin-ws/crash-later'), { token: t.token() }));
      c.ws.send('crash');
      expect((await c.closed).code).toBe(1012);
      const again = track(
        await waitFor(
          async () => {
            const r = await connect(url('/plugin-ws/crash-later'), { token: t.token() });
            if (r.kind !== 'open') return undefined;
            const first = await Promise.race([
              r.conn.closed.then(() => undefined),
              (async () => {
                r.conn.ws.send('still alive?');
                return r.conn.next();
              })(),
            ]);
            return first === undefined ? undefined : r.conn;
          },
          10_000,
          'the restarted plugin',
        ),
      );
      expect(again.received[0]?.data.toString()).toBe('still alive?');
    });
  });

  describe('subprotocols and credentials', () => {
    it('returns the subprotocol the plugin chose', async () => {
      const c = track(
        await open(url('/plugin-ws/headers'), {
          token: t.token(),
          protocols: ['other', 'chosen-proto'],
        }),
      );
      expect(c.ws.protocol).toBe('chosen-proto');
      const seen = JSON.parse((await c.next()).data.toString()) as { protocol: string };
      expect(seen.protocol).toBe('chosen-proto');
    });

    it('answers portico for a bearer-subprotocol client when the plugin picks none; no Origin reaches the plugin', async () => {
      const c = track(
        await open(url('/plugin-ws/headers'), {
          protocols: ['portico', bearerProtocol(t.token())],
          headers: { origin: t.baseUrl },
        }),
      );
      expect(c.ws.protocol).toBe('portico');
      const seen = JSON.parse((await c.next()).data.toString()) as {
        headers: Record<string, string>;
      };
      expect(seen.headers['sec-websocket-protocol']).toBe('portico');
      // Portico checked the Origin; a plugin that knows no origin must not refuse the browser.
      expect(seen.headers.origin).toBeUndefined();
    });

    it('strips every credential and spoofed header, and adds a verifiable identity', async () => {
      const token = t.token({ sub: 'alice', name: 'Alice Liddell', roles: ['user', 'dev'] });
      const c = track(
        await open(url(`/plugin-ws/headers/sub/path?token=${token}&keep=1`), {
          headers: {
            cookie: `portico_token=${token}; other=1`,
            'x-plugin-user-id': 'mallory',
            'x-forwarded-for': '6.6.6.6',
          },
        }),
      );
      const seen = JSON.parse((await c.next()).data.toString()) as {
        url: string;
        headers: Record<string, string>;
      };
      expect(seen.url).toBe('/ws/sub/path?keep=1');
      const raw = JSON.stringify(seen);
      expect(raw).not.toContain(token);
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers.cookie).toBeUndefined();
      expect(seen.headers['x-plugin-user-id']).toBe('alice');
      expect(decodeURIComponent(seen.headers['x-plugin-user-name'] ?? '')).toBe('Alice Liddell');
      expect(seen.headers['x-plugin-user-roles']).toBe('user,dev');
      expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      const key = Buffer.from(
        hkdfSync(
          'sha256',
          Buffer.from(t.config.SECRETS_KEY ?? '', 'base64'),
          'portico/plugin-identity/v1',
          'plugin:headers',
          32,
        ),
      ).toString('hex');
      const iat = seen.headers['x-plugin-user-iat'] ?? '';
      const exp = seen.headers['x-plugin-user-exp'] ?? '';
      // Scheme v2: netstrings of context, plugin, id, name, role count, roles, iat, exp.
      const fields = [
        ...['portico-identity/v2', 'headers', 'alice', 'Alice Liddell', '2', 'user', 'dev'],
        ...[iat, exp],
      ].map((f) => `${Buffer.byteLength(f)}:${f},`);
      const expected = createHmac('sha256', key).update(fields.join('')).digest('hex');
      expect(seen.headers['x-plugin-user-signature']).toBe(`v2=${expected}`);
    });
  });
});

describe('plugin stopped or restarted by an admin while clients are connected', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['close-codes', 'crash-later']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  it('closes clients with 1012 on an admin restart', async () => {
    const c = await open(`${t.wsUrl}/plugin-ws/close-codes`, { token: t.token() });
    const res = await http(t.baseUrl, 'POST', '/api/plugins/close-codes/restart', {
      token: t.adminToken(),
    });
    expect(res.status).toBe(202);
    expect((await c.closed).code).toBe(1012);
  });

  it('closes clients with 1011 when the plugin is disabled', async () => {
    await waitFor(async () => {
      const r = await http(t.baseUrl, 'GET', '/api/plugins/crash-later', { token: t.token() });
      return (r.json as { status: string }).status === 'running';
    });
    const c = await open(`${t.wsUrl}/plugin-ws/crash-later`, { token: t.token() });
    await http(t.baseUrl, 'PUT', '/api/plugins/crash-later/enable', {
      token: t.adminToken(),
      body: { enabled: false },
    });
    expect((await c.closed).code).toBe(1011);
    const again = await open(`${t.wsUrl}/plugin-ws/crash-later`, { token: t.token() });
    expect((await again.closed).code).toBe(4503);
  });
});

describe('keepalive', () => {
  it('pings idle clients and closes one that stops answering (1001 to the plugin)', async () => {
    const plugins = pluginsDirWith(['close-codes']);
    const t = await startTestApp({
      pluginsDir: plugins.dir,
      env: { WS_PING_INTERVAL_MS: '100' },
    });
    try {
      await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
      // A well-behaved client answers pings and stays connected.
      const alive = await open(`${t.wsUrl}/plugin-ws/close-codes`, { token: t.token() });
      let pings = 0;
      alive.ws.on('ping', () => pings++);
      // A client that completed its handshake and then went silent (no pong, no reads).
      const silent = await open(`${t.wsUrl}/plugin-ws/close-codes`, {
        token: t.token(),
        autoPong: false,
      });
      expect((await silent.closed).code).toBe(1006);
      const last = await waitFor(async () => {
        const res = await http(t.baseUrl, 'GET', '/api/plugins/close-codes/rpc/last-close', {
          token: t.token(),
        });
        return (res.json as { code: number | null }).code !== null ? res.json : undefined;
      });
      expect(last).toMatchObject({ code: 1001 });
      expect(pings).toBeGreaterThanOrEqual(2);
      expect(alive.ws.readyState).toBe(WebSocket.OPEN);
      alive.ws.close();
      await alive.closed;
    } finally {
      await t.close();
      plugins.remove();
    }
  });
});

describe('host shutdown', () => {
  it('closes every proxied connection with 1001', async () => {
    const plugins = pluginsDirWith(['bundled:echo']);
    const t = await startTestApp({ pluginsDir: plugins.dir });
    let closing: Promise<void> | undefined;
    try {
      await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
      const c = await open(`${t.wsUrl}/plugin-ws/echo`, { token: t.token() });
      c.ws.send('hello');
      await c.next();
      closing = t.close();
      expect((await c.closed).code).toBe(1001);
      await closing;
      expect(c.ws.readyState).toBe(WebSocket.CLOSED);
    } finally {
      await (closing ?? t.close());
      plugins.remove();
    }
  });
});
