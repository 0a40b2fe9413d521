import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { signCompact } from '../../scripts/lib/token-minter';
import type { SignatureKey } from '../../scripts/lib/token-minter';

export type AsymmetricAlgorithm = 'RS256' | 'ES256';

/** A key pair as an identity provider holds it; `jwk` is what its JWKS endpoint publishes. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: AsymmetricAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JsonWebKey;
}

/** How the server answers: the key set, HTTP 500, or never (a hung identity provider). */
export type JwksServerMode = 'keys' | 'error' | 'hang';

export const randomKid = (): string => randomBytes(8).toString('hex');

/**
 * A fresh RSA 2048 (RS256) or P-256 (ES256) key pair. `jwk` overrides change what is published
 * (e.g. another `alg`) without changing the key; `modulusLength` makes a weak RSA key.
 */
export function generateSigningKey(
  alg: AsymmetricAlgorithm,
  options: { kid?: string; jwk?: JsonWebKey; modulusLength?: number } = {},
): SigningKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: options.modulusLength ?? 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = options.kid ?? randomKid();
  const jwk: JsonWebKey = {
    ...publicKey.export({ format: 'jwk' }),
    kid,
    alg,
    use: 'sig',
    ...options.jwk,
  };
  return { kid, alg, privateKey, publicKey, jwk };
}

/** What signWith may change about the token it builds. */
export interface SignWithOptions {
  /** The `alg` header and the hash signed with (default: the key's own algorithm). */
  readonly algorithm?: string;
  /** The `kid` header; `null` for none (default: the key's kid). */
  readonly kid?: string | null;
  /** Lifetime in seconds when `claims` has no `exp` (default 300). */
  readonly expiresIn?: number;
}

/** A token signed by `key`, with `iat`, and an `exp` 5 minutes out unless `claims` has one. */
export function signWith(
  key: SigningKey,
  claims: Record<string, unknown>,
  options: SignWithOptions = {},
): string {
  const keyid = options.kid === undefined ? key.kid : (options.kid ?? undefined);
  const iat = Math.floor(Date.now() / 1000);
  return signCompact(
    {
      alg: options.algorithm ?? key.alg,
      typ: 'JWT',
      ...(keyid === undefined ? {} : { kid: keyid }),
    },
    { iat, ...('exp' in claims ? {} : { exp: iat + (options.expiresIn ?? 300) }), ...claims },
    key.privateKey,
  );
}

/**
 * A compact JWT with any header, whatever it claims: signed with HMAC when `signer` is a secret
 * (even one that is really a public key's PEM), with the private key when it is one, unsigned
 * when it is `undefined`. The hash follows the header's `alg` (SHA-256 by default).
 */
export function craftToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer?: SignatureKey,
): string {
  return signCompact(header, claims, signer);
}

/**
 * A JWKS endpoint on 127.0.0.1 for tests: publishes one RS256 and one ES256 key, can rotate
 * them, publish others, fail or hang on purpose, and counts the requests it gets.
 */
export class JwksServer {
  /** Requests received so far. */
  public requests = 0;
  public mode: JwksServerMode = 'keys';
  private current: Record<AsymmetricAlgorithm, SigningKey> = {
    RS256: generateSigningKey('RS256'),
    ES256: generateSigningKey('ES256'),
  };
  private extra: SigningKey[] = [];
  private closed = false;
  private readonly server: Server;
  private urlValue = '';

  private constructor() {
    this.server = createServer((_req, res) => {
      this.requests++;
      if (this.mode === 'hang') return;
      if (this.mode === 'error') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('identity provider down');
        return;
      }
      const keys = [...Object.values(this.current), ...this.extra].map((k) => k.jwk);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
  }

  public static async start(): Promise<JwksServer> {
    const jwks = new JwksServer();
    await new Promise<void>((resolve, reject) => {
      jwks.server.once('error', reject);
      jwks.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = jwks.server.address() as AddressInfo;
    jwks.urlValue = `http://127.0.0.1:${port}/.well-known/jwks.json`;
    return jwks;
  }

  /** `http://127.0.0.1:<port>/.well-known/jwks.json` */
  public get url(): string {
    return this.urlValue;
  }

  public get rsa(): SigningKey {
    return this.current.RS256;
  }

  public get ec(): SigningKey {
    return this.current.ES256;
  }

  /** Replaces the published key for `alg` with a new one, which it returns. */
  public rotate(alg: AsymmetricAlgorithm): SigningKey {
    this.current[alg] = generateSigningKey(alg);
    return this.current[alg];
  }

  /** Publishes `key` next to the current ones. */
  public publish(key: SigningKey): void {
    this.extra.push(key);
  }

  /** Stops listening and drops every connection, hung ones included; later calls do nothing. */
  public async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
