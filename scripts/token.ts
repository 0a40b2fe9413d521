/* `npm run token -- --sub alice --role admin [--role x] [--name N] [--ttl 3600]` */
import { parseArgs } from 'node:util';

import { mintToken } from '../src/auth/token-minter';
import { ConfigException } from '../src/config/config.exception';
import { loadConfig } from '../src/config/load-config';

function main(): number {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      role: { type: 'string', multiple: true },
      name: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
    },
    strict: true,
  });
  if (values.sub === undefined || values.sub === '') {
    process.stderr.write(
      'usage: npm run token -- --sub <user> [--role <role>]... [--name <name>] [--ttl <seconds>]\n',
    );
    return 2;
  }
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) {
    process.stderr.write('--ttl must be a positive whole number of seconds\n');
    return 2;
  }
  const config = loadConfig();
  if (config.JWT_SECRET === undefined) {
    process.stderr.write(
      'this configuration verifies tokens from JWT_JWKS_URL; mint them with your identity provider\n',
    );
    return 1;
  }
  const token = mintToken(config.JWT_SECRET, {
    sub: values.sub,
    roles: values.role ?? [],
    expiresInSeconds: ttl,
    rolesClaim: config.JWT_ROLES_CLAIM,
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(config.JWT_ISSUER !== undefined ? { issuer: config.JWT_ISSUER } : {}),
    ...(config.JWT_AUDIENCE !== undefined ? { audience: config.JWT_AUDIENCE } : {}),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(
    `${err instanceof ConfigException || err instanceof TypeError ? err.message : String(err)}\n`,
  );
  process.exitCode = 1;
}
