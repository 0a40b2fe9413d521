import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { PorticoProcess, startPorticoProcess } from '../helpers/portico-process';
import { waitFor } from '../helpers/wait';

const OLD = 'tok_old_rotated_away_4b1d7e';
const NEW = 'tok_new_then_deleted_93c2a0f5';

/**
 * What the secret-printer fixture prints a value as; for a value inside a longer base64 string
 * (Basic auth), the characters encoding the value's bytes alone.
 */
function printedForms(value: string): string[] {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  const inside = (before: string, after: string): string =>
    b64(`${before}${value}${after}`).slice(
      Math.ceil((8 * before.length) / 6),
      Math.floor((8 * (before.length + value.length)) / 6),
    );
  return [
    value,
    b64(value).replace(/=+$/, ''),
    inside('u:', ''),
    inside('usr:', ':tail'),
    inside('user:', ''),
    Buffer.from(value).toString('hex'),
    Buffer.from(value).toString('hex').toUpperCase(),
  ];
}

/**
 * The host in its own process at LOG_LEVEL=debug (plugin output goes to its log too), running
 * the secret-printer fixture, which prints its API_TOKEN plain and encoded when asked and, twice,
 * while it is being stopped. The secret is rotated, then deleted; every restart stops a process
 * that still prints the value it was started with, after that value left the store.
 */
describe('secret values in plugin output', () => {
  let p: PorticoProcess;
  let plugins: ReturnType<typeof pluginsDirWith>;

  beforeAll(async () => {
    plugins = pluginsDirWith(['secret-printer']);
    p = await startPorticoProcess(plugins.dir, { env: { LOG_LEVEL: 'debug' }, capture: true });
  }, 60_000);

  afterAll(async () => {
    await p.stop();
    plugins.remove();
  });

  const admin = (): string => p.adminToken();
  const logs = async (): Promise<string> => {
    const res = await http(p.baseUrl, 'GET', '/api/plugins/secret-printer/logs?tail=1000', {
      token: admin(),
    });
    expect(res.status).toBe(200);
    return res.body.toString();
  };
  const status = async (): Promise<{ pid: number; length: number } | undefined> => {
    const res = await http(p.baseUrl, 'GET', '/api/plugins/secret-printer/rpc/status', {
      token: p.token(),
    });
    return res.status === 200 ? (res.json as { pid: number; length: number }) : undefined;
  };
  /** Waits for a running process that was given a value of `length` characters. */
  const runningWith = (length: number): Promise<{ pid: number; length: number }> =>
    waitFor(
      async () => {
        const s = await status();
        return s?.length === length ? s : undefined;
      },
      20_000,
      `secret-printer running with a ${length}-character token`,
    );
  /** Waits until the log API shows the process's line, then returns all of it. */
  const logged = (what: string, pid: number): Promise<string> =>
    waitFor(
      async () => {
        const text = await logs();
        return text.includes(`${what} pid=${pid} `) ? text : undefined;
      },
      20_000,
      `"${what}" from pid ${pid} in the log API`,
    );
  const secretWrite = (method: 'PUT' | 'DELETE', value?: string) =>
    http(p.baseUrl, method, '/api/plugins/secret-printer/secrets/API_TOKEN', {
      token: admin(),
      ...(value === undefined ? {} : { body: { value } }),
    });

  const expectAbsent = (text: string, value: string): void => {
    for (const form of printedForms(value)) expect(text).not.toContain(form);
  };

  it('secret rotated while the old process prints the old value as it stops → old value never shown', async () => {
    expect((await secretWrite('PUT', OLD)).status).toBe(204);
    const old = await runningWith(OLD.length);
    // Printed on request while current: redacted as before.
    await http(p.baseUrl, 'GET', '/api/plugins/secret-printer/rpc/print', { token: p.token() });
    await logged('asked', old.pid);

    expect((await secretWrite('PUT', NEW)).status).toBe(204);
    await runningWith(NEW.length);
    const text = await logged('last words', old.pid);
    expect(text).toContain(`stopping pid=${old.pid} plain=[REDACTED]`);
    expectAbsent(text, OLD);
    await waitFor(() => p.output().includes(`last words pid=${old.pid} `), 10_000, 'host log');
    expectAbsent(p.output(), OLD);
  }, 60_000);

  it('secret deleted while the old process prints it as it stops → value never shown', async () => {
    const current = await runningWith(NEW.length);
    expect((await secretWrite('DELETE')).status).toBe(204);
    await runningWith(0);
    const text = await logged('last words', current.pid);
    expect(text).toContain(`stopping pid=${current.pid} plain=[REDACTED]`);
    expectAbsent(text, NEW);
    expectAbsent(text, OLD);
    await waitFor(() => p.output().includes(`last words pid=${current.pid} `), 10_000, 'host log');
    expectAbsent(p.output(), NEW);
    expectAbsent(p.output(), OLD);
  }, 60_000);
});
