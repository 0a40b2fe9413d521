import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { parseResponses, rawConnect, statusOf } from '../helpers/raw-ws';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** The JSON body of the `i`-th complete response in `data`. */
function jsonOf(data: Buffer, i = 0): Seen {
  return JSON.parse(parseResponses(data)[i]?.body.toString() ?? '{}') as Seen;
}

/** Request smuggling, route confusion and spoofed headers on the RPC proxy (issue 9, 1 and 10). */
describe('RPC proxy, hostile requests', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo', 'headers']);
    t = await startTestApp({ pluginsDir: plugins.dir });
    await waitFor(async () => (await http(t.baseUrl, 'GET', '/readyz')).status === 200);
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  const head = (lines: string[]): string =>
    [...lines, `Host: 127.0.0.1:${t.port}`, `Authorization: Bearer ${t.token()}`].join('\r\n') +
    '\r\n';

  it.each(['POST', 'GET'])(
    '%s with "Connection: keep-alive, Content-Length" and a request as body → body stays a body; later requests unaffected',
    async (method) => {
      const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
      const ex = rawConnect(
        t.port,
        Buffer.from(
          head([
            `${method} /api/plugins/headers/rpc/first HTTP/1.1`,
            'Connection: keep-alive, Content-Length',
            `Content-Length: ${smuggled.length}`,
          ]) +
            '\r\n' +
            smuggled,
        ),
      );
      const data = await ex.until((d) => parseResponses(d).length > 0);
      ex.socket.destroy();
      expect(statusOf(data)).toBe(200);
      const seen = jsonOf(data);
      expect(seen).toMatchObject({ method, url: '/first' });
      expect(seen.headers['content-length']).toBe(String(smuggled.length));
      // Every later request on the pooled plugin connections gets its own answer.
      for (let i = 0; i < 20; i++) {
        const res = await http(t.baseUrl, 'GET', `/api/plugins/headers/rpc/after-${i}`, {
          token: t.token({ sub: 'bob' }),
        });
        expect(res.status).toBe(200);
        expect((res.json as Seen).url).toBe(`/after-${i}`);
      }
    },
  );

  it.each(['127.0.0.1:22', '/api/plugins/echo/rpc/echo'])(
    'CONNECT %s (a tunnel request) → 501 with a JSON body, no tunnel; the host keeps serving',
    async (target) => {
      const ex = rawConnect(t.port, Buffer.from(head([`CONNECT ${target} HTTP/1.1`]) + '\r\n'));
      const data = await ex.closed;
      expect(statusOf(data)).toBe(501);
      expect(JSON.parse(parseResponses(data)[0]?.body.toString() ?? '{}')).toEqual({
        statusCode: 501,
        error: 'Not Implemented',
        message: 'CONNECT is not supported',
      });
      expect((await http(t.baseUrl, 'GET', '/readyz')).status).toBe(200);
    },
  );

  it('a body framed by Connection-named Content-Length reaches echo intact', async () => {
    const body = 'POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc';
    const ex = rawConnect(
      t.port,
      Buffer.from(
        head([
          'POST /api/plugins/echo/rpc/echo HTTP/1.1',
          'Connection: Content-Length, close',
          `Content-Length: ${body.length}`,
        ]) +
          '\r\n' +
          body,
      ),
    );
    const data = await ex.closed;
    expect(statusOf(data)).toBe(200);
    expect(parseResponses(data)[0]?.body.toString()).toBe(body);
  });

  it.each([
    [
      'Content-Length and Transfer-Encoding together',
      ['Content-Length: 5', 'Transfer-Encoding: chunked'],
    ],
    ['two different Content-Lengths', ['Content-Length: 5', 'Content-Length: 6']],
    ['Transfer-Encoding: gzip, chunked', ['Transfer-Encoding: gzip, chunked']],
    ['Transfer-Encoding: chunked, identity', ['Transfer-Encoding: chunked, identity']],
  ])('ambiguous framing: %s → 400 and the connection closed', async (_case, framing) => {
    const ex = rawConnect(
      t.port,
      Buffer.from(
        head(['POST /api/plugins/headers/rpc/ambiguous HTTP/1.1', ...framing]) +
          '\r\n5\r\nhello\r\n0\r\n\r\n',
      ),
    );
    const data = await ex.closed;
    expect(statusOf(data)).toBe(400);
    expect(data.toString()).not.toContain('/ambiguous"');
  });

  it('a chunked body → forwarded chunked, byte for byte', async () => {
    const ex = rawConnect(
      t.port,
      Buffer.from(
        head([
          'POST /api/plugins/echo/rpc/echo HTTP/1.1',
          'Transfer-Encoding: chunked',
          'Connection: close',
        ]) + '\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
      ),
    );
    const data = (await ex.closed).toString();
    expect(statusOf(Buffer.from(data))).toBe(200);
    expect(data).toMatch(/hello.*world/s);
  });

  it('/RPC/ in another case → 404, never forwarded', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins/headers/RPC/x', { token: t.token() });
    expect(res.status).toBe(404);
    expect(JSON.stringify(res.json)).not.toContain('"method"');
  });

  it('absolute-form request target → forwarded with its own path and query', async () => {
    const ex = rawConnect(
      t.port,
      Buffer.from(
        head([
          'GET http://evil.example/api/plugins/headers/rpc/abs/path?q=1 HTTP/1.1',
          'Connection: close',
        ]) + '\r\n',
      ),
    );
    const data = await ex.closed;
    expect(statusOf(data)).toBe(200);
    expect(jsonOf(data).url).toBe('/abs/path?q=1');
  });

  it('identity and address headers spelled with underscores, X-Real-IP → never reach the plugin', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/plugins/headers/rpc/who', {
      token: t.token({ sub: 'alice' }),
      headers: {
        x_plugin_user_id: 'mallory',
        x_plugin_user_roles: 'admin',
        x_forwarded_for: '6.6.6.6',
        'x-real-ip': '6.6.6.6',
        x_real_ip: '6.6.6.6',
        'cf-connecting-ip': '6.6.6.6',
      },
    });
    const seen = res.json as Seen;
    expect(Object.keys(seen.headers).filter((n) => /^x_|real-ip|connecting-ip/i.test(n))).toEqual(
      [],
    );
    expect(seen.headers['x-plugin-user-id']).toBe('alice');
    expect(JSON.stringify(seen)).not.toContain('6.6.6.6');
  });
});
