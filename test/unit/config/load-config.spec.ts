import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigExceptionCode } from '../../../src/config/config.exception';
import { DEV_KEYS_FILE, loadConfig } from '../../../src/config/load-config';

describe('loadConfig', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'portico-config-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('has the contract defaults', () => {
    const c = loadConfig({ DATA_DIR: dataDir });
    expect(c).toMatchObject({
      PORT: 8080,
      HOST: '0.0.0.0',
      JWT_ROLES_CLAIM: 'roles',
      LOG_LEVEL: 'info',
      WS_PING_INTERVAL_MS: 25000,
      ALLOWED_ORIGINS: [],
      HTTP_HEADERS_TIMEOUT_MS: 10000,
      HTTP_REQUEST_TIMEOUT_MS: 300000,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 5000,
      MAX_HEADER_PHASE_CONNECTIONS_PER_IP: 64,
      HEADER_PHASE_CAP_EXEMPT: [],
    });
  });

  it('generates development keys once, mode 0600, and reuses them', () => {
    const first = loadConfig({ DATA_DIR: dataDir });
    const file = join(dataDir, DEV_KEYS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const second = loadConfig({ DATA_DIR: dataDir });
    expect(second.JWT_SECRET).toBe(first.JWT_SECRET);
    expect(second.SECRETS_KEY).toBe(first.SECRETS_KEY);
    expect(Buffer.from(first.SECRETS_KEY ?? '', 'base64')).toHaveLength(32);
    expect(readFileSync(file, 'utf8')).toContain(first.JWT_SECRET);
  });

  it('refuses to start in production without a JWT key, naming the variable', () => {
    expect(() =>
      loadConfig({
        NODE_ENV: 'production',
        DATA_DIR: dataDir,
        SECRETS_KEY: Buffer.alloc(32).toString('base64'),
      }),
    ).toThrow(/JWT_SECRET or JWT_JWKS_URL/);
  });

  it('refuses to start in production without SECRETS_KEY', () => {
    try {
      loadConfig({ NODE_ENV: 'production', DATA_DIR: dataDir, JWT_SECRET: 'x'.repeat(40) });
      throw new Error('expected a failure');
    } catch (err) {
      expect(err).toMatchObject({ code: ConfigExceptionCode.MISSING_IN_PRODUCTION });
      expect((err as Error).message).toMatch(/SECRETS_KEY/);
    }
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET must be at least 32 characters/],
    [
      { SECRETS_KEY: Buffer.alloc(16).toString('base64') },
      /SECRETS_KEY: must be the base64 encoding of exactly 32 bytes/,
    ],
    [{ JWT_JWKS_URL: 'not a url' }, /JWT_JWKS_URL/],
    [{ ALLOWED_ORIGINS: '*' }, /ALLOWED_ORIGINS: each entry must be an origin.*\(not: \*\)/],
    [{ ALLOWED_ORIGINS: 'https://a.example/app' }, /ALLOWED_ORIGINS.*https:\/\/a\.example\/app/],
    [{ ALLOWED_ORIGINS: 'null' }, /ALLOWED_ORIGINS/],
    [{ HTTP_HEADERS_TIMEOUT_MS: '50' }, /HTTP_HEADERS_TIMEOUT_MS/],
    [{ HTTP_KEEP_ALIVE_TIMEOUT_MS: '0' }, /HTTP_KEEP_ALIVE_TIMEOUT_MS/],
    [{ MAX_HEADER_PHASE_CONNECTIONS_PER_IP: '-1' }, /MAX_HEADER_PHASE_CONNECTIONS_PER_IP/],
    [
      { HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' },
      /HTTP_REQUEST_TIMEOUT_MS: must be 0 \(no limit\) or at least HTTP_HEADERS_TIMEOUT_MS/,
    ],
    [
      { HEADER_PHASE_CAP_EXEMPT: '10.0.0.0/8, proxy.internal, ::1/129' },
      /HEADER_PHASE_CAP_EXEMPT.*\(not: proxy\.internal, ::1\/129\)/,
    ],
  ])('rejects %j with a message naming the variable', (env, message) => {
    expect(() => loadConfig({ DATA_DIR: dataDir, ...env })).toThrow(message);
  });

  it('parses lists and numbers', () => {
    const c = loadConfig({
      DATA_DIR: dataDir,
      PORT: '9000',
      ALLOWED_ORIGINS: 'https://a.example, https://b.example',
    });
    expect(c.PORT).toBe(9000);
    expect(c.ALLOWED_ORIGINS).toEqual(['https://a.example', 'https://b.example']);
  });

  it('normalises ALLOWED_ORIGINS the way browsers spell an Origin', () => {
    const c = loadConfig({
      DATA_DIR: dataDir,
      ALLOWED_ORIGINS: 'HTTPS://Console.Example:443/, http://localhost:3000',
    });
    expect(c.ALLOWED_ORIGINS).toEqual(['https://console.example', 'http://localhost:3000']);
  });

  it('reads the HTTP server limits', () => {
    const c = loadConfig({
      DATA_DIR: dataDir,
      HTTP_HEADERS_TIMEOUT_MS: '2000',
      HTTP_REQUEST_TIMEOUT_MS: '0',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000',
      MAX_HEADER_PHASE_CONNECTIONS_PER_IP: '0',
      HEADER_PHASE_CAP_EXEMPT: '127.0.0.1, 10.1.0.0/16, fd00::/8',
    });
    expect(c).toMatchObject({
      HTTP_HEADERS_TIMEOUT_MS: 2000,
      HTTP_REQUEST_TIMEOUT_MS: 0,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 65000,
      MAX_HEADER_PHASE_CONNECTIONS_PER_IP: 0,
      HEADER_PHASE_CAP_EXEMPT: ['127.0.0.1', '10.1.0.0/16', 'fd00::/8'],
    });
  });
});
