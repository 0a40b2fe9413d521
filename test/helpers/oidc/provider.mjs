// A standards-compliant OpenID Provider for the e2e suite (the npm package `oidc-provider`,
// certified). It is ES modules only, which Jest cannot load, so it runs in a process of its own:
// test/helpers/oidc-provider.ts starts it and reads one JSON line from stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>"}
// Configuration comes as JSON in OIDC_TEST_CONFIG (see OidcProviderOptions in oidc-provider.ts):
//   { clients: [client metadata…], accounts: { <login>: { name, email, groups, claims } },
//     ttl: { IdToken, AccessToken, RefreshToken, Session, Grant } (seconds), rotateRefreshToken,
//     refreshTokens: true | 'offline_access' | false, groupsClaim: 'scope' | 'always',
//     claimsInIdToken, clockOffsetSeconds }
// Sign-in is the provider's development login page (any password; the login picks the
// account), followed by its consent page. Unknown logins are refused (no account).
//
// Tests steer it through JSON endpoints under /__test/ (a path the provider does not use),
// answered to loopback peers only: revoke an account, change its groups, shift the clock of the
// ID tokens it issues, register a client at runtime, count requests.
import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');
const ttl = config.ttl ?? {};
/** login → account; mutable, so a changed account shows in the next ID token or userinfo. */
const accounts = new Map(
  Object.entries(config.accounts ?? {}).map(([login, account]) => [login, { ...account }]),
);
/** Added to iat, exp and auth_time of every ID token issued from now on. */
let clockOffsetSeconds = Number(config.clockOffsetSeconds ?? 0);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

/**
 * Everything the provider keeps (sessions, grants, codes, tokens, clients, interactions), one Map
 * per model, instead of the provider's own LRU memory adapter: the control endpoints must find
 * what belongs to an account, and nothing may be evicted while a test runs.
 */
const models = new Map();

function modelEntries(name) {
  let entries = models.get(name);
  if (entries === undefined) {
    entries = new Map();
    models.set(name, entries);
  }
  return entries;
}

/** The adapter interface of oidc-provider (docs: "adapter"), over `models`. */
class MapAdapter {
  constructor(name) {
    this.entries = modelEntries(name);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    this.entries.set(id, { payload: structuredClone(payload), expiresAt });
  }

  async find(id) {
    const entry = this.live(id);
    return entry === undefined ? undefined : structuredClone(entry.payload);
  }

  async findByUid(uid) {
    return this.findBy('uid', uid);
  }

  async findByUserCode(userCode) {
    return this.findBy('userCode', userCode);
  }

  async consume(id) {
    const entry = this.live(id);
    if (entry !== undefined) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.entries.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [id, entry] of this.entries) {
      if (entry.payload.grantId === grantId) this.entries.delete(id);
    }
  }

  live(id) {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }

  findBy(field, value) {
    for (const [id, entry] of this.entries) {
      if (entry.payload[field] === value) return this.find(id);
    }
    return undefined;
  }
}

/** Claims beyond the standard ones that some account carries (e.g. realm_access). */
const extraClaimNames = [
  ...new Set([...accounts.values()].flatMap((account) => Object.keys(account.claims ?? {}))),
];
const groupsAlways = config.groupsClaim === 'always';
const refreshTokens = config.refreshTokens ?? true;

const issuerPort = Number(process.env.PORT ?? 0);
const server = createServer();
await new Promise((resolve) => server.listen(issuerPort, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  jwks: { keys: [jwk] },
  cookies: { keys: ['portico-test-cookie-key-0123456789'] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub', ...extraClaimNames, ...(groupsAlways ? ['groups'] : [])],
    profile: ['name'],
    email: ['email'],
    groups: ['groups'],
  },
  // true: scope claims only at userinfo when an access token is issued (the ID token keeps sub).
  conformIdTokenClaims: config.claimsInIdToken === false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
  },
  rotateRefreshToken: config.rotateRefreshToken ?? true,
  // Like Keycloak by default: a refresh token whenever the client may use the grant, without
  // offline_access (which the provider only grants with prompt=consent). Such a refresh token
  // ends with the provider session (expiresWithSession), as Keycloak's do.
  issueRefreshToken: async (_ctx, client, code) => {
    if (refreshTokens === false || !client.grantTypeAllowed('refresh_token')) return false;
    if (refreshTokens === 'offline_access') return code.scopes.has('offline_access');
    return true;
  },
  ttl: {
    AccessToken: ttl.AccessToken ?? 3600,
    IdToken: ttl.IdToken ?? 3600,
    RefreshToken: ttl.RefreshToken ?? 86400,
    Session: ttl.Session ?? 86400,
    Grant: ttl.Grant ?? 86400,
    Interaction: 600,
    AuthorizationCode: 60,
  },
  findAccount: async (_ctx, sub) => {
    if (!accounts.has(sub)) return undefined;
    return {
      accountId: sub,
      // Read at every call: setGroups shows in the next ID token, from a refresh too.
      claims: async () => {
        const account = accounts.get(sub) ?? {};
        return {
          ...account.claims,
          sub,
          name: account.name ?? sub,
          email: account.email ?? `${sub}@example.test`,
          groups: account.groups ?? [],
        };
      },
    };
  },
});
// Behind nothing: the issuer is plain http on loopback.
provider.proxy = false;

/** Requests counted since start (or the last reset), for tests that assert "refreshed once". */
let stats = emptyStats();

function emptyStats() {
  return { tokenRequests: {}, tokenErrors: {}, requests: {} };
}

function count(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if (typeof route === 'string') {
    count(stats.requests, route);
    if (route === 'token') {
      const grantType = ctx.oidc.params?.grant_type ?? ctx.oidc.body?.grant_type ?? 'unknown';
      count(stats.tokenRequests, grantType);
      if (ctx.status >= 400) count(stats.tokenErrors, grantType);
    }
  }
  // The provider's pages import a web font; a test browser must not reach out of loopback.
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
  }
});

// The clock offset applies to ID tokens only (from the code and the refresh grant): shifting
// Date.now for the whole process would also date the provider's cookies, which a browser then
// drops. Sessions, codes and access/refresh token lifetimes keep the real clock.
const { IdToken } = provider;
const issueIdToken = IdToken.prototype.issue;
IdToken.prototype.issue = async function issue(options = {}) {
  const token = await issueIdToken.call(this, options);
  if (options.use !== 'idtoken' || clockOffsetSeconds === 0) return token;
  return shiftTimes(token, clockOffsetSeconds);
};

/** Re-signs a compact RS256 JWT (signed with our key) with its times moved by `seconds`. */
function shiftTimes(token, seconds) {
  const parts = token.split('.');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (parts.length !== 3 || header.alg !== 'RS256' || header.kid !== jwk.kid) {
    throw new Error('a clock offset needs ID tokens signed RS256 with the provider key');
  }
  const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  for (const claim of ['iat', 'exp', 'auth_time']) {
    if (typeof payload[claim] === 'number') payload[claim] += seconds;
  }
  const signed = `${parts[0]}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${signed}.${sign('sha256', Buffer.from(signed), privateKey).toString('base64url')}`;
}

/**
 * Clients live in the adapter (not the provider's static `clients`), so a test can register or
 * replace one once it knows its relying party's port. Validated now, so bad metadata fails here.
 */
async function putClient(metadata) {
  await provider.Client.validate(metadata);
  await provider.Client.adapter.upsert(metadata.client_id, metadata);
}

/** Removes every session (unless kept), grant, code and token of `login`; counts per model. */
function revokeAccount(login, { keepSessions = false } = {}) {
  const removed = {};
  for (const [name, entries] of models) {
    if (name === 'Client' || (keepSessions && name === 'Session')) continue;
    for (const [id, entry] of entries) {
      if (entry.payload.accountId !== login) continue;
      entries.delete(id);
      removed[name] = (removed[name] ?? 0) + 1;
    }
  }
  return removed;
}

class ControlError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const ACCOUNT_FIELDS = new Set(['name', 'email', 'groups', 'claims']);

/** The /__test/ endpoints: JSON in, JSON out. */
async function control(method, path, body) {
  if (path === '/__test/stats' && method === 'GET') return stats;
  if (path === '/__test/stats' && method === 'DELETE') {
    stats = emptyStats();
    return stats;
  }
  if (path === '/__test/clock' && method === 'PUT') {
    if (!Number.isInteger(body.offsetSeconds)) {
      throw new ControlError(400, 'offsetSeconds must be a whole number of seconds');
    }
    clockOffsetSeconds = body.offsetSeconds;
    return { offsetSeconds: clockOffsetSeconds };
  }
  const client = /^\/__test\/clients\/([^/]+)$/.exec(path);
  if (client !== null && method === 'PUT') {
    const clientId = decodeURIComponent(client[1]);
    if (body.client_id !== clientId) {
      throw new ControlError(400, 'client_id in the body must match the path');
    }
    try {
      await putClient(body);
    } catch (err) {
      throw new ControlError(400, `invalid client metadata: ${err.error_description ?? err}`);
    }
    return { client_id: clientId };
  }
  const account = /^\/__test\/accounts\/([^/]+)(\/revoke)?$/.exec(path);
  if (account !== null) {
    const login = decodeURIComponent(account[1]);
    if (!accounts.has(login)) throw new ControlError(404, `no account ${login}`);
    if (account[2] !== undefined && method === 'POST') {
      return { removed: revokeAccount(login, body) };
    }
    if (account[2] === undefined && method === 'PATCH') {
      const unknown = Object.keys(body).filter((key) => !ACCOUNT_FIELDS.has(key));
      if (unknown.length > 0) throw new ControlError(400, `unknown fields: ${unknown.join(', ')}`);
      if (body.groups !== undefined && !Array.isArray(body.groups)) {
        throw new ControlError(400, 'groups must be an array of strings');
      }
      const updated = { ...accounts.get(login), ...body };
      accounts.set(login, updated);
      return updated;
    }
  }
  throw new ControlError(404, `no control endpoint ${method} ${path}`);
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const MAX_CONTROL_BODY = 1024 * 1024;

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_CONTROL_BODY) throw new ControlError(413, 'body too large');
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString());
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error();
    return body;
  } catch {
    throw new ControlError(400, 'the body must be a JSON object');
  }
}

async function answerControl(req, res) {
  let status = 200;
  let answer;
  try {
    if (!LOOPBACK.has(req.socket.remoteAddress)) throw new ControlError(403, 'loopback only');
    const path = new URL(req.url, issuer).pathname;
    answer = await control(req.method, path, await readJson(req));
  } catch (err) {
    status = err instanceof ControlError ? err.status : 500;
    answer = { error: err instanceof Error ? err.message : String(err) };
    if (status === 500) process.stderr.write(`control endpoint failed: ${err?.stack ?? err}\n`);
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(answer));
}

for (const client of config.clients ?? []) await putClient(client);

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/__test/')) void answerControl(req, res);
  else callback(req, res);
});
process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
