import { symlinkSync } from 'node:fs';
import { join } from 'node:path';

import { TOKEN_COOKIE } from '../../src/auth/credential-extractor';
import { http, HttpResult } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { FIXTURE_PLUGINS, startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';

interface View {
  name: string;
  status: string;
  enabled: boolean;
  restarts: number;
  secrets: { key: string; set: boolean }[];
}

const EVIL = 'https://evil.example';
const CONSOLE = 'https://console.example';
const PLUGIN = 'crash-later';

/**
 * Cross-site request forgery with the ambient credentials (CONTRACT.md §5): a page on another
 * site can make the browser send the `portico_token` cookie, or a URL with `?token=`, but can't
 * choose the Origin the browser sends with it. Every refusal is checked twice: the 403, and that
 * nothing happened (the plugin's pid, `restarts`, flags, secrets, RPC counter are unchanged).
 */
describe('CSRF: cookie and ?token= credentials', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;

  const admin = (): string => t.adminToken();
  /** A request as a browser sends it: the cookie rides along, the Origin is the page's. */
  const ambient = (
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: object,
    token = admin(),
  ): Promise<HttpResult> =>
    http(t.baseUrl, method, path, {
      headers: { cookie: `${TOKEN_COOKIE}=${token}`, ...headers },
      body,
    });
  const view = async (name = PLUGIN): Promise<View> =>
    (await http(t.baseUrl, 'GET', `/api/plugins/${name}`, { token: admin() })).json as View;
  const pid = async (): Promise<number> =>
    (
      (await http(t.baseUrl, 'GET', `/api/plugins/${PLUGIN}/rpc/pid`, { token: t.token() }))
        .json as { pid: number }
    ).pid;
  const running = (): Promise<View> =>
    waitFor(async () => {
      const v = await view();
      return v.status === 'running' && v;
    });
  /** How many RPC requests Portico forwarded to the plugin, from /metrics. */
  const forwarded = async (): Promise<number> => {
    const text = (await http(t.baseUrl, 'GET', '/metrics')).body.toString();
    const lines = text.split('\n').filter((l) => l.startsWith('portico_rpc_requests_total{'));
    return lines
      .filter((l) => l.includes(`plugin="${PLUGIN}"`))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  };
  const refused = (res: HttpResult): void => {
    expect({ status: res.status, body: res.json }).toEqual({
      status: 403,
      body: { statusCode: 403, error: 'Forbidden', message: 'cross-site request refused' },
    });
  };

  beforeAll(async () => {
    plugins = pluginsDirWith([PLUGIN, 'secret-env']);
    t = await startTestApp({ pluginsDir: plugins.dir, env: { ALLOWED_ORIGINS: CONSOLE } });
    await running();
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
  });

  describe('refused', () => {
    it('cookie + foreign Origin on POST /restart → 403, plugin not restarted', async () => {
      const before = await running();
      const pidBefore = await pid();
      refused(await ambient('POST', `/api/plugins/${PLUGIN}/restart`, { origin: EVIL }));
      expect(await view()).toMatchObject({ status: 'running', restarts: before.restarts });
      expect(await pid()).toBe(pidBefore);
    });

    it('cookie + foreign Origin on POST /rescan → 403, new plugin folder not picked up', async () => {
      symlinkSync(join(FIXTURE_PLUGINS, 'close-codes'), join(plugins.dir, 'close-codes'));
      refused(await ambient('POST', '/api/plugins/rescan', { origin: EVIL }));
      const list = (await http(t.baseUrl, 'GET', '/api/plugins', { token: admin() }))
        .json as View[];
      expect(list.map((v) => v.name)).not.toContain('close-codes');
    });

    it('cookie + foreign Origin on PUT /enable → 403, plugin still enabled and running', async () => {
      const pidBefore = await pid();
      refused(
        await ambient('PUT', `/api/plugins/${PLUGIN}/enable`, { origin: EVIL }, { enabled: false }),
      );
      expect(await view()).toMatchObject({ enabled: true, status: 'running' });
      expect(await pid()).toBe(pidBefore);
    });

    it('cookie + foreign Origin on PUT /secrets/:key → 403, secret not set', async () => {
      refused(
        await ambient(
          'PUT',
          '/api/plugins/secret-env/secrets/API_TOKEN',
          { origin: EVIL },
          { value: 'attacker-chosen' },
        ),
      );
      expect((await view('secret-env')).secrets).toContainEqual(
        expect.objectContaining({ key: 'API_TOKEN', set: false }),
      );
    });

    it('cookie + foreign Origin on PUT /access → 403, plugin still open to every user', async () => {
      refused(
        await ambient('PUT', `/api/plugins/${PLUGIN}/access`, { origin: EVIL }, { roles: ['ops'] }),
      );
      const asUser = await http(t.baseUrl, 'GET', `/api/plugins/${PLUGIN}/rpc/pid`, {
        token: t.token(),
      });
      expect(asUser.status).toBe(200);
    });

    it('cookie + foreign Origin on RPC POST → 403, never reaches the plugin', async () => {
      const pidBefore = await pid();
      const before = await forwarded();
      refused(
        await ambient(
          'POST',
          `/api/plugins/${PLUGIN}/rpc/crash`,
          { origin: EVIL },
          undefined,
          t.token(),
        ),
      );
      expect(await forwarded()).toBe(before);
      expect(await pid()).toBe(pidBefore);
    });

    it('cookie + foreign Origin on RPC GET → 403, never reaches the plugin', async () => {
      const before = await forwarded();
      refused(
        await ambient(
          'GET',
          `/api/plugins/${PLUGIN}/rpc/pid`,
          { origin: EVIL },
          undefined,
          t.token(),
        ),
      );
      expect(await forwarded()).toBe(before);
    });

    it('?token= + foreign Origin on RPC POST → 403, never reaches the plugin', async () => {
      const before = await forwarded();
      refused(
        await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/rpc/crash?token=${t.token()}`, {
          headers: { origin: EVIL },
        }),
      );
      expect(await forwarded()).toBe(before);
    });

    it.each([
      ['no Origin and no Sec-Fetch-Site', {}],
      ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }],
      ['Origin: null', { origin: 'null' }],
      ['the same host on another port', { origin: 'http://127.0.0.1:1' }],
    ])('cookie + %s on POST /restart → 403, plugin not restarted', async (_what, headers) => {
      const before = await running();
      refused(await ambient('POST', `/api/plugins/${PLUGIN}/restart`, headers));
      expect(await view()).toMatchObject({ status: 'running', restarts: before.restarts });
    });
  });

  describe('allowed', () => {
    it('cookie + foreign Origin on GET /api/plugins (safe method, management API) → 200', async () => {
      expect((await ambient('GET', '/api/plugins', { origin: EVIL })).status).toBe(200);
    });

    it('cookie + same-host Origin on POST /restart → 202, plugin restarted', async () => {
      const before = await running();
      const res = await ambient('POST', `/api/plugins/${PLUGIN}/restart`, { origin: t.baseUrl });
      expect(res.status).toBe(202);
      await waitFor(async () => {
        const v = await view();
        return v.status === 'running' && v.restarts > before.restarts;
      });
    });

    it('cookie + Origin in ALLOWED_ORIGINS on POST /rescan → 200, new plugin folder picked up', async () => {
      const res = await ambient('POST', '/api/plugins/rescan', { origin: CONSOLE });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ added: ['close-codes'] });
    });

    it('cookie + Sec-Fetch-Site: same-origin without Origin on RPC GET → 200 from the plugin', async () => {
      await running();
      const res = await ambient(
        'GET',
        `/api/plugins/${PLUGIN}/rpc/pid`,
        { 'sec-fetch-site': 'same-origin' },
        undefined,
        t.token(),
      );
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ pid: await pid() });
    });

    it('Authorization: Bearer + foreign Origin on RPC POST and POST /restart → plugin reached', async () => {
      const before = await running();
      const echo = await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/rpc/echo`, {
        token: t.token(),
        headers: { origin: EVIL, cookie: `${TOKEN_COOKIE}=${admin()}` },
        body: 'hello',
      });
      expect({ status: echo.status, body: echo.body.toString() }).toEqual({
        status: 200,
        body: 'hello',
      });
      const restart = await http(t.baseUrl, 'POST', `/api/plugins/${PLUGIN}/restart`, {
        token: admin(),
        headers: { origin: EVIL },
      });
      expect(restart.status).toBe(202);
      await waitFor(async () => (await view()).restarts > before.restarts);
    });
  });
});
