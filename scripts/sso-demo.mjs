// Try single sign-on on your machine: starts the e2e suite's OpenID provider (npm
// oidc-provider, a devDependency; development login pages, any password) on 127.0.0.1:9090 and
// Portico (dist/, so run `npm run build` first) on 127.0.0.1:8080 wired to it, with the bundled
// plugins. Sign in at http://127.0.0.1:8080/ as
//   alice (group portico-admins → role admin), bob (group developers → role terminal),
//   carol (no group: no roles).
// Stop with Ctrl-C; both processes stop. Development only: never point a real deployment at it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const porticoPort = Number(process.env.PORT ?? 8080);
const providerPort = Number(process.env.SSO_DEMO_PROVIDER_PORT ?? 9090);
const portico = `http://127.0.0.1:${porticoPort}`;
const issuer = `http://127.0.0.1:${providerPort}`;

const providerConfig = {
  clients: [
    {
      client_id: 'portico',
      redirect_uris: [`${portico}/api/auth/callback`],
      post_logout_redirect_uris: [`${portico}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
  ],
  accounts: {
    alice: { name: 'Alice (admin)', groups: ['portico-admins'] },
    bob: { name: 'Bob (terminal)', groups: ['developers'] },
    carol: { name: 'Carol (no roles)', groups: [] },
  },
  groupsClaim: 'always',
  ttl: { AccessToken: 600 },
};

const children = [];
function start(name, args, env) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  child.stdout.on('data', (chunk) => process.stdout.write(chunk));
  child.on('exit', (code, signal) => {
    console.error(`${name} exited (${signal ?? code}); stopping`);
    stop(1);
  });
  return child;
}

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

start('the OpenID provider', [join(root, 'test/helpers/oidc/provider.mjs')], {
  PATH: process.env.PATH ?? '',
  PORT: String(providerPort),
  OIDC_TEST_CONFIG: JSON.stringify(providerConfig),
});
start('Portico', [join(root, 'dist/main.js')], {
  ...process.env,
  HOST: '127.0.0.1',
  PORT: String(porticoPort),
  OIDC_ISSUER: issuer,
  OIDC_CLIENT_ID: 'portico',
  OIDC_ROLE_MAP: 'portico-admins=admin,developers=terminal',
  SECRETS_KEY: process.env.SECRETS_KEY ?? randomBytes(32).toString('base64'),
});
console.error(`Sign in at ${portico}/ as alice, bob or carol (any password). Provider: ${issuer}`);
