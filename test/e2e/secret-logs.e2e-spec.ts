import { BEARER_SUBPROTOCOL_PREFIX, TOKEN_COOKIE } from '../../src/auth/credential-extractor';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';
import { connect, open } from '../helpers/ws-client';

const SECRET = 'tok_live_logcheck_5f3a9c1e77';

/**
 * The host in its own process at LOG_LEVEL=debug (request lines, plugin output, everything),
 * driven through every path a secret or a token travels; then its whole output is searched.
 */
describe("the host's logs", () => {
  let p: PorticoProcess;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['secret-env', 'bundled:echo']);
    p = await startPorticoProcess(plugins.dir, { env: { LOG_LEVEL: 'debug' }, capture: true });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    plugins.remove();
  });

  it('never contain a secret value or a token, while the plugin output they show is redacted', async () => {
    const admin = p.adminToken();
    const user = p.token();
    const put = (path: string, body: string | object) =>
      http(p.baseUrl, 'PUT', path, {
        token: admin,
        body,
        headers: { 'content-type': 'application/json' },
      });

    // Bad writes first: none of their answers may quote the value either.
    const badBodies = [`{"value": "${SECRET}"`, `{"value": ${SECRET}}`, `${SECRET}`];
    for (const body of badBodies) {
      const res = await put('/api/plugins/secret-env/secrets/API_TOKEN', body);
      expect(res.status).toBe(400);
      // Not even the parser's usual quote of the body's first characters.
      expect(res.body.toString()).not.toContain(SECRET.slice(0, 8));
    }
    const undeclared = await put('/api/plugins/secret-env/secrets/NOT_DECLARED', {
      value: SECRET,
    });
    expect(undeclared.status).toBe(400);
    expect(undeclared.body.toString()).not.toContain(SECRET);

    expect((await put('/api/plugins/secret-env/secrets/API_TOKEN', { value: SECRET })).status).toBe(
      204,
    );
    // The plugin starts with it and prints it (plain, base64, URL-encoded) on its own output.
    await waitFor(
      async () =>
        (await http(p.baseUrl, 'GET', '/api/plugins/secret-env/rpc/env', { token: user }))
          .status === 200,
      15_000,
      'secret-env running',
    );
    const rpc = await http(p.baseUrl, 'GET', '/api/plugins/secret-env/rpc/headers?token=' + user, {
      // As a browser sends it from Portico's own page (cookie credentials need that: CSRF rule).
      headers: { cookie: `${TOKEN_COOKIE}=${user}`, 'sec-fetch-site': 'same-origin' },
    });
    expect(rpc.status).toBe(200);

    // Every credential form on a WebSocket handshake, including a rejected one.
    const viaQuery = await open(`${p.wsUrl}/plugin-ws/echo?token=${user}`);
    const viaProtocol = await open(`${p.wsUrl}/plugin-ws/echo`, {
      protocols: ['portico', BEARER_SUBPROTOCOL_PREFIX + Buffer.from(user).toString('base64url')],
    });
    for (const conn of [viaQuery, viaProtocol]) {
      conn.ws.send('hello');
      expect((await conn.next()).data.toString()).toBe('hello');
      conn.ws.close();
      await conn.closed;
    }
    const forged = `${user.slice(0, -4)}AAAA`;
    expect(await connect(`${p.wsUrl}/plugin-ws/echo?token=${forged}`)).toMatchObject({
      kind: 'rejected',
      status: 401,
    });

    await waitFor(
      () => p.output().includes('API_TOKEN is [REDACTED]'),
      10_000,
      'plugin output in the host log',
    );
    const output = p.output();
    const forms = [
      SECRET,
      Buffer.from(SECRET).toString('base64').replace(/=+$/, ''),
      user,
      admin,
      forged,
      user.split('.')[2],
      admin.split('.')[2],
    ];
    for (const form of forms) expect(output).not.toContain(form);
    // The log is not empty or silenced: requests were logged, with the token query redacted.
    expect(output).toContain('token=[REDACTED]');
  }, 60_000);
});
