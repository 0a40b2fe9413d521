import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';

import { OIDC_CALLBACK_PATH, parseScopes, roleMapProblem } from '../auth/oidc/oidc-settings';
import { normalizeOrigin } from '../auth/origin-policy';
import { isAddressOrSubnet } from '../http/client-address';
import { ConfigException, ConfigExceptionCode } from './config.exception';
import { PorticoConfig } from './portico-config';

/** File in DATA_DIR holding keys generated for development (mode 0600). */
export const DEV_KEYS_FILE = 'dev-keys.json';

interface DevKeys {
  JWT_SECRET: string;
  SECRETS_KEY: string;
}

type Env = Record<string, string | undefined>;

/** Every variable PorticoConfig reads; nothing else in the environment is looked at. */
export const CONFIG_KEYS = [
  'NODE_ENV',
  'PORT',
  'HOST',
  'LISTEN_BACKLOG',
  'PLUGINS_DIR',
  'DATA_DIR',
  'JWT_SECRET',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'JWT_ROLES_CLAIM',
  'JWT_ALLOW_NO_EXP',
  'OIDC_ISSUER',
  'OIDC_CLIENT_ID',
  'OIDC_CLIENT_SECRET',
  'OIDC_REDIRECT_URL',
  'OIDC_POST_LOGOUT_REDIRECT_URL',
  'OIDC_SCOPES',
  'OIDC_ROLES_CLAIM',
  'OIDC_ROLE_MAP',
  'SESSION_IDLE_TIMEOUT_MS',
  'SESSION_MAX_AGE_MS',
  'SESSION_TOKEN_TTL_MS',
  'SECRETS_KEY',
  'PLUGIN_SECRETS_DIR',
  'PROJECTS_DIR',
  'PLUGINS_CONFIG',
  'PLUGINS_CONFIG_POLL_MS',
  'DATABASE_URL',
  'ALLOWED_ORIGINS',
  'LOG_LEVEL',
  'SHUTDOWN_GRACE_MS',
  'WS_PING_INTERVAL_MS',
  'WS_UPSTREAM_TIMEOUT_MS',
  'RPC_TIMEOUT_MS',
  'HTTP_HEADERS_TIMEOUT_MS',
  'HTTP_REQUEST_TIMEOUT_MS',
  'HTTP_KEEP_ALIVE_TIMEOUT_MS',
  'MAX_HEADER_PHASE_CONNECTIONS_PER_IP',
  'HEADER_PHASE_CAP_EXEMPT',
  'PATH',
  'HOME',
] as const;

/**
 * Validates the environment into a PorticoConfig. Outside production, keys that are not set are
 * generated once into DATA_DIR so that `npm start` works on a fresh clone; in production a missing
 * key is an error naming the variable.
 */
export function loadConfig(env: Env = process.env): PorticoConfig {
  const plain: Record<string, string> = {};
  for (const key of CONFIG_KEYS) {
    const value = env[key];
    if (value !== undefined && value !== '') plain[key] = value;
  }
  const config = plainToInstance(PorticoConfig, plain);
  const errors = validateSync(config, { forbidUnknownValues: true });
  if (errors.length > 0) {
    const lines = errors.map(
      (e) => `${e.property}: ${Object.values(e.constraints ?? {}).join('; ')}`,
    );
    throw new ConfigException(
      ConfigExceptionCode.INVALID_VALUE,
      `Invalid configuration:\n  ${lines.join('\n  ')}`,
    );
  }
  if (config.SECRETS_KEY !== undefined && Buffer.from(config.SECRETS_KEY, 'base64').length !== 32) {
    throw new ConfigException(
      ConfigExceptionCode.INVALID_VALUE,
      'Invalid configuration:\n  SECRETS_KEY: must be the base64 encoding of exactly 32 bytes',
    );
  }
  const problems = crossFieldProblems(config);
  if (problems.length > 0) {
    throw new ConfigException(
      ConfigExceptionCode.INVALID_VALUE,
      `Invalid configuration:\n  ${problems.join('\n  ')}`,
    );
  }
  config.ALLOWED_ORIGINS = config.ALLOWED_ORIGINS.map((o) => normalizeOrigin(o) ?? o);
  config.PLUGINS_DIR = resolve(config.PLUGINS_DIR);
  config.DATA_DIR = resolve(config.DATA_DIR);
  if (config.PLUGIN_SECRETS_DIR !== undefined)
    config.PLUGIN_SECRETS_DIR = resolve(config.PLUGIN_SECRETS_DIR);
  if (config.PLUGINS_CONFIG !== undefined) config.PLUGINS_CONFIG = resolve(config.PLUGINS_CONFIG);
  if (config.PROJECTS_DIR !== undefined) config.PROJECTS_DIR = resolve(config.PROJECTS_DIR);

  const missing: string[] = [];
  // With single sign-on, Portico verifies the tokens it issues itself: no other key is needed.
  if (
    config.JWT_SECRET === undefined &&
    config.JWT_JWKS_URL === undefined &&
    config.OIDC_ISSUER === undefined
  )
    missing.push('JWT_SECRET');
  if (config.SECRETS_KEY === undefined) missing.push('SECRETS_KEY');
  if (config.SECRETS_KEY === undefined && config.DATABASE_URL !== undefined)
    // A key generated into one replica's DATA_DIR would seal values the others cannot open.
    throw new ConfigException(
      ConfigExceptionCode.MISSING_IN_PRODUCTION,
      'DATABASE_URL requires SECRETS_KEY to be set, the same on every replica: the database ' +
        'keeps secret values sealed with it',
    );
  if (missing.length > 0) {
    if (config.isProduction) {
      const named = missing.map((m) => (m === 'JWT_SECRET' ? 'JWT_SECRET or JWT_JWKS_URL' : m));
      throw new ConfigException(
        ConfigExceptionCode.MISSING_IN_PRODUCTION,
        `NODE_ENV=production requires ${named.join(' and ')} to be set`,
      );
    }
    const dev = readOrCreateDevKeys(config.DATA_DIR);
    if (missing.includes('JWT_SECRET')) config.JWT_SECRET = dev.JWT_SECRET;
    if (missing.includes('SECRETS_KEY')) config.SECRETS_KEY = dev.SECRETS_KEY;
  }
  return config;
}

/** Checks class-validator can't express: list entries with a syntax, and related values. */
function crossFieldProblems(config: PorticoConfig): string[] {
  const problems: string[] = [];
  const notOrigins = config.ALLOWED_ORIGINS.filter((o) => normalizeOrigin(o) === undefined);
  if (notOrigins.length > 0)
    problems.push(
      `ALLOWED_ORIGINS: each entry must be an origin like https://app.example.com[:port] ` +
        `(not: ${notOrigins.join(', ')})`,
    );
  const notAddresses = config.HEADER_PHASE_CAP_EXEMPT.filter((a) => !isAddressOrSubnet(a));
  if (notAddresses.length > 0)
    problems.push(
      `HEADER_PHASE_CAP_EXEMPT: each entry must be an IP address or a subnet like 10.0.0.0/8 ` +
        `(not: ${notAddresses.join(', ')})`,
    );
  if (config.DATABASE_URL !== undefined) {
    const problem = databaseUrlProblem(config.DATABASE_URL);
    if (problem !== undefined) problems.push(`DATABASE_URL: ${problem}`);
    if (config.PLUGINS_CONFIG !== undefined)
      problems.push(
        'DATABASE_URL and PLUGINS_CONFIG: set one, not both (plugin state comes either from ' +
          'the declared file or from the database)',
      );
  }
  problems.push(...oidcProblems(config));
  if (
    config.HTTP_REQUEST_TIMEOUT_MS !== 0 &&
    config.HTTP_REQUEST_TIMEOUT_MS < config.HTTP_HEADERS_TIMEOUT_MS
  )
    problems.push(
      'HTTP_REQUEST_TIMEOUT_MS: must be 0 (no limit) or at least HTTP_HEADERS_TIMEOUT_MS',
    );
  return problems;
}

/** Single sign-on settings that only make sense together (docs/operations.md, "Single sign-on"). */
function oidcProblems(config: PorticoConfig): string[] {
  const problems: string[] = [];
  const oidcSet = config.OIDC_ISSUER !== undefined;
  if (oidcSet && config.OIDC_CLIENT_ID === undefined)
    problems.push('OIDC_CLIENT_ID: must be set when OIDC_ISSUER is');
  if (!oidcSet && config.OIDC_CLIENT_ID !== undefined)
    problems.push('OIDC_ISSUER: must be set when OIDC_CLIENT_ID is');
  if (oidcSet && !parseScopes(config.OIDC_SCOPES).includes('openid'))
    problems.push('OIDC_SCOPES: must include openid');
  if (config.OIDC_ROLE_MAP !== undefined) {
    const bad = roleMapProblem(config.OIDC_ROLE_MAP);
    if (bad !== undefined) problems.push(`OIDC_ROLE_MAP: ${bad}`);
  }
  if (config.OIDC_REDIRECT_URL !== undefined) {
    const path = new URL(config.OIDC_REDIRECT_URL).pathname;
    if (path !== OIDC_CALLBACK_PATH)
      problems.push(`OIDC_REDIRECT_URL: must end with ${OIDC_CALLBACK_PATH} (not ${path})`);
  }
  if (config.SESSION_MAX_AGE_MS < config.SESSION_TOKEN_TTL_MS)
    problems.push('SESSION_MAX_AGE_MS: must be at least SESSION_TOKEN_TTL_MS');
  return problems;
}

/** Why `url` is not a PostgreSQL URL Portico can use; the message never repeats the URL. */
function databaseUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be a URL like postgres://user:password@host:5432/database';
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    return 'must start with postgres:// or postgresql://';
  if (parsed.hostname === '') return 'must name a host';
  if (parsed.pathname.length <= 1) return 'must name a database (postgres://host:5432/portico)';
  return undefined;
}

function readOrCreateDevKeys(dataDir: string): DevKeys {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, DEV_KEYS_FILE);
  let existing: Partial<DevKeys> = {};
  try {
    existing = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevKeys>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new ConfigException(
        ConfigExceptionCode.KEY_FILE_UNREADABLE,
        `Cannot read ${file}: ${(err as Error).message}; delete it to generate new development keys`,
      );
  }
  const keys: DevKeys = {
    JWT_SECRET: existing.JWT_SECRET ?? randomBytes(32).toString('base64url'),
    SECRETS_KEY: existing.SECRETS_KEY ?? randomBytes(32).toString('base64'),
  };
  if (existing.JWT_SECRET === undefined || existing.SECRETS_KEY === undefined) {
    writeFileSync(file, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return keys;
}
