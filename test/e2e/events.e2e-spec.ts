import { BEARER_SUBPROTOCOL_PREFIX } from '../../src/auth/credential-extractor';
import type { EventMessage } from '../../src/events/events.gateway';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect, open, WsConnection } from '../helpers/ws-client';

const bearer = (token: string): string =>
  BEARER_SUBPROTOCOL_PREFIX + Buffer.from(token).toString('base64url');

/** The messages of a connection so far, parsed. */
const messages = (c: WsConnection): EventMessage[] =>
  c.received.map((m) => JSON.parse(m.data.toString()) as EventMessage);

/**
 * `/api/events`, the console's live feed, as a Nest gateway on the same server as the plugin
 * proxy: authenticated before the 101, status changes for everyone, output lines for admins
 * only, closed at token expiry; and `/plugin-ws/*` untouched beside it.
 */
describe('/api/events (Nest gateway beside the plugin proxy)', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const conns: WsConnection[] = [];
  const track = (c: WsConnection): WsConnection => {
    conns.push(c);
    return c;
  };
  const events = (token: string): Promise<WsConnection> =>
    open(`${t.wsUrl}/api/events`, { protocols: ['portico', bearer(token)] }).then(track);

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
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

  it('answers hello and a snapshot of the plugins, with the portico subprotocol', async () => {
    const c = await events(t.adminToken());
    expect(c.ws.protocol).toBe('portico');
    await waitFor(() => c.received.length >= 2);
    const [hello, snapshot] = messages(c);
    expect(hello).toMatchObject({ type: 'hello', user: { admin: true } });
    expect(snapshot.type).toBe('plugins');
    const echo = (snapshot as { plugins: { name: string; status: string }[] }).plugins.find(
      (p) => p.name === 'echo',
    );
    expect(echo).toMatchObject({ status: 'running' });
  });

  it.each([
    ['no credentials', {}, 401],
    ['an invalid token', { protocols: ['portico', bearer('not-a-jwt')] }, 401],
    [
      'a cookie from another site',
      { headers: { cookie: 'portico_token=TOKEN', origin: 'https://evil.example' } },
      403,
    ],
  ])('refuses %s: HTTP %s before any 101', async (_what, options, status) => {
    const withToken = JSON.parse(JSON.stringify(options).replace('TOKEN', t.token())) as object;
    const result = await connect(`${t.wsUrl}/api/events`, withToken);
    expect(result.kind).toBe('rejected');
    expect(result.kind === 'rejected' && result.status).toBe(status);
  });

  it('leaves /plugin-ws/* and every other path to the plugin proxy, on the same server', async () => {
    const feed = await events(t.token());
    const echo = track(await open(`${t.wsUrl}/plugin-ws/echo`, { token: t.token() }));
    echo.ws.send('both at once');
    expect((await echo.next()).data.toString()).toContain('both at once');
    const unknown = await connect(`${t.wsUrl}/api/nothing-here`, { token: t.token() });
    expect(unknown.kind === 'rejected' && unknown.status).toBe(404);
    // The query string does not change whose path it is.
    const withQuery = await open(`${t.wsUrl}/api/events?x=1`, { token: t.token() });
    track(withQuery);
    await waitFor(() => withQuery.received.length >= 1);
    expect(feed.ws.readyState).toBe(feed.ws.OPEN);
  });

  it('a restart reaches every client as status changes; output lines reach admins only', async () => {
    const admin = await events(t.adminToken());
    const user = await events(t.token());
    await waitFor(() => admin.received.length >= 2 && user.received.length >= 2);
    const restart = await http(t.baseUrl, 'POST', '/api/plugins/echo/restart', {
      token: t.adminToken(),
    });
    expect(restart.status).toBe(202);
    const statuses = (c: WsConnection): string[] =>
      messages(c)
        .filter((m) => m.type === 'plugin' && m.plugin.name === 'echo')
        .map((m) => (m as { plugin: { status: string } }).plugin.status);
    // Running again after something else: the restart was seen going through.
    await waitFor(
      () => statuses(admin).some((s) => s !== 'running') && statuses(admin).at(-1) === 'running',
    );
    await waitFor(() => statuses(user).at(-1) === 'running' && statuses(user).length >= 2);
    // The restarted echo printed its ready line: admins see it, plain users never.
    await waitFor(() =>
      messages(admin).some(
        (m) => m.type === 'log' && m.name === 'echo' && m.line.includes('"ready"'),
      ),
    );
    expect(messages(user).filter((m) => m.type === 'log')).toEqual([]);
  });

  it('closes with 4401 when the token expires', async () => {
    const soon = t.token({ expiresInSeconds: 2 });
    const c = await events(soon);
    const started = Date.now();
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 15_000);
});

describe('/api/events at shutdown', () => {
  it('tells every console 1001 before the host stops', async () => {
    const plugins = pluginsDirWith(['bundled:echo']);
    const t = await startTestApp({ pluginsDir: plugins.dir });
    try {
      const c = await open(`${t.wsUrl}/api/events`, { token: t.token() });
      await waitFor(() => c.received.length >= 2);
      const closing = t.close();
      expect(await c.closed).toEqual({ code: 1001, reason: 'server shutting down' });
      await closing;
    } finally {
      await t.close();
      plugins.remove();
    }
  });
});
