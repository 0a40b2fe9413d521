import {
  createHmac,
  sign as cryptoSign,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
} from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { sign } from 'jsonwebtoken';
import type { SignOptions } from 'jsonwebtoken';

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

/** A token signed by `key`, with its `kid` unless `kid` is given (`null`: no kid at all). */
export function signWith(
  key: SigningKey,
  claims: Record<string, unknown>,
  options: SignOptions & { kid?: string | null } = {},
): string {
  const { kid, ...rest } = options;
  const keyid = kid === undefined ? key.kid : (kid ?? undefined);
  return sign(claims, key.privateKey, {
    algorithm: key.alg,
    ...(keyid === undefined ? {} : { keyid }),
    ...('exp' in claims || rest.expiresIn !== undefined ? {} : { expiresIn: 300 }),
    ...rest,
    allowInsecureKeySizes: true,
  });
}

/**
 * A compact JWT with any header, whatever it claims: signed with HMAC-SHA256 when `signer` is a
 * secret, with SHA-256 and the private key when it is one, unsigned when it is `undefined`.
 */
export function craftToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer?: string | Buffer | KeyObject,
): string {
  const encode = (part: object): string => Buffer.from(JSON.stringify(part)).toString('base64url');
  const input = `${encode(header)}.${encode(claims)}`;
  let signature = '';
  if (signer instanceof KeyObject) {
    signature = cryptoSign('sha256', Buffer.from(input), {
      key: signer,
      dsaEncoding: 'ieee-p1363',
    }).toString('base64url');
  } else if (signer !== undefined) {
    signature = createHmac('sha256', signer).update(input).digest('base64url');
  }
  return `${input}.${signature}`;
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
