import { mintToken } from '../../scripts/lib/token-minter';
import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { TEST_JWT_SECRET } from '../helpers/test-app';
import { waitFor } from '../helpers/wait';
import { connect } from '../helpers/ws-client';

/**
 * The host in its own process at LOG_LEVEL=debug (request lines, WebSocket opens and refusals),
 * sent tokens in query parameters whose names are spelled the ways URLSearchParams still reads
 * as `token`; its whole output is then searched for each token. One token per case, so a leak
 * names its case.
 */
describe('tokens in logged URLs', () => {
  let p: PorticoProcess;
  let plugins: ReturnType<typeof pluginsDirWith>;
  const token = (sub: string): string => mintToken(TEST_JWT_SECRET, { sub, roles: [] });

  beforeAll(async () => {
    plugins = pluginsDirWith(['bundled:echo']);
    p = await startPorticoProcess(plugins.dir, { env: { LOG_LEVEL: 'debug' }, capture: true });
  }, 60_000);

  afterAll(async () => {
    await p?.stop();
    plugins?.remove();
  });

  const leaks = (secret: string): boolean =>
    p.output().includes(secret) || p.output().includes(secret.split('.')[2] as string);

  const R = '[REDACTED]';
  it.each([
    ['?%74oken=', '?%74oken='],
    ['?t%6Fken= (a lower-case letter escaped)', '?t%6Fken='],
    ['?%74%6f%6b%65%6e= (every letter escaped)', '?%74%6f%6b%65%6e='],
    ['?%74oken= after a malformed escape', '?x=%zz&%74oken='],
    ['?%74oken= after an empty ?token=', `?token=${R}&%74oken=`],
  ])('HTTP request authenticated by %s → 200, token absent from the log', async (label, query) => {
    const secret = token(`http ${label}`);
    const sent = `/api/plugins${query.replace(R, '')}${secret}`;
    expect((await http(p.baseUrl, 'GET', sent)).status).toBe(200);
    await waitFor(
      () => p.output().includes(`"url":"/api/plugins${query}${R}"`),
      10_000,
      'the redacted request line',
    );
    expect(leaks(secret)).toBe(false);
  });

  it('names URLSearchParams does not read as token (?TOKEN=, ?token+=) → 401, absent from the log', async () => {
    const upper = token('upper-case name');
    const plus = token('name with plus');
    expect((await http(p.baseUrl, 'GET', `/api/plugins?TOKEN=${upper}`)).status).toBe(401);
    expect((await http(p.baseUrl, 'GET', `/api/plugins?token+=${plus}`)).status).toBe(401);
    await waitFor(
      () => p.output().includes('"url":"/api/plugins?token+=[REDACTED]"'),
      10_000,
      'the redacted request line',
    );
    expect(leaks(upper)).toBe(false);
    expect(leaks(plus)).toBe(false);
  });

  it('WebSocket handshake with ?%74oken= (accepted, or refused when forged) → token absent from the log', async () => {
    const good = token('websocket');
    const forged = `${token('forged websocket').slice(0, -4)}AAAA`;
    const accepted = await connect(`${p.wsUrl}/plugin-ws/echo?%74oken=${good}&keep=1`);
    if (accepted.kind === 'open') {
      accepted.conn.ws.close();
      await accepted.conn.closed;
    }
    const refused = await connect(`${p.wsUrl}/plugin-ws/echo?%74oken=${forged}`);
    expect(refused).toMatchObject({ kind: 'rejected', status: 401 });
    await waitFor(
      () => p.output().includes('/plugin-ws/echo?%74oken=[REDACTED]'),
      10_000,
      'the refused handshake in the log',
    );
    expect(leaks(good)).toBe(false);
    expect(leaks(forged)).toBe(false);
  });
});
