/**
 * Prints a user token the running configuration accepts (same environment and DATA_DIR as the
 * server, so with no variables set it signs with the generated key in ./data/dev-keys.json).
 * Use `npm run -s token -- ...` to get the token alone on stdout.
 */
import { parseArgs } from 'node:util';

import { mintToken } from './lib/token-minter';
import { ConfigException } from '../src/config/config.exception';
import { loadConfig } from '../src/config/load-config';

const USAGE =
  'usage: npm run token -- --sub <user> [--role <role>]... [--name <name>] [--ttl <seconds>]';

/** A mistake the user can fix: printed without a stack trace, exits with `exitCode`. */
class ScriptError extends Error {
  public constructor(
    message: string,
    public readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Exit codes: 2 for bad arguments (as shells and getopt tools do), 1 for an unusable config. */
const usageError = (message: string): ScriptError => new ScriptError(message, 2);

function main(argv: string[]): string {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        sub: { type: 'string' },
        role: { type: 'string', multiple: true },
        name: { type: 'string' },
        ttl: { type: 'string', default: '3600' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw usageError(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help === true) return USAGE;
  if (values.sub === undefined || values.sub.trim() === '') {
    throw usageError(`--sub is required\n${USAGE}`);
  }
  if (!/^\d+$/.test(values.ttl) || Number(values.ttl) <= 0) {
    throw usageError('--ttl must be a positive whole number of seconds');
  }

  const config = loadConfig();
  if (config.JWT_SECRET === undefined) {
    throw new ScriptError(
      'cannot mint: this configuration only accepts tokens signed by the keys at JWT_JWKS_URL; ' +
        'get a token from that identity provider (or set JWT_SECRET)',
      1,
    );
  }
  return mintToken(config.JWT_SECRET, {
    sub: values.sub,
    roles: values.role ?? [],
    expiresInSeconds: Number(values.ttl),
    rolesClaim: config.JWT_ROLES_CLAIM,
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(config.JWT_ISSUER !== undefined ? { issuer: config.JWT_ISSUER } : {}),
    ...(config.JWT_AUDIENCE !== undefined ? { audience: config.JWT_AUDIENCE } : {}),
  });
}

try {
  process.stdout.write(`${main(process.argv.slice(2))}\n`);
} catch (err) {
  const known = err instanceof ScriptError || err instanceof ConfigException;
  process.stderr.write(`${known ? err.message : String(err)}\n`);
  process.exitCode = err instanceof ScriptError ? err.exitCode : 1;
}
