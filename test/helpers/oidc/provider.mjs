// A standards-compliant OpenID Provider for the e2e suite (the npm package `oidc-provider`,
// certified). It is ES modules only, which Jest cannot load, so it runs in a process of its own:
// test/helpers/oidc-provider.ts starts it and reads one JSON line from stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>"}
// Configuration comes as JSON in OIDC_TEST_CONFIG:
//   { clients: [client metadata…], accounts: { <login>: { name, email, groups } },
//     ttl: { IdToken, AccessToken, RefreshToken, Session, Grant } (seconds), rotateRefreshToken }
// Sign-in is the provider's development login page (any password; the login picks the
// account), followed by its consent page. Unknown logins are refused (no account).
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');
const accounts = config.accounts ?? {};
const ttl = config.ttl ?? {};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  jwks: { keys: [jwk] },
  cookies: { keys: ['portico-test-cookie-key-0123456789'] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
  },
  rotateRefreshToken: config.rotateRefreshToken ?? true,
  issueRefreshToken: async (_ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
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
    const account = accounts[sub];
    if (account === undefined) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub,
        name: account.name ?? sub,
        email: account.email ?? `${sub}@example.test`,
        groups: account.groups ?? [],
      }),
    };
  },
});
// Behind nothing: the issuer is plain http on loopback.
provider.proxy = false;
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
