import { createHmac, KeyObject, sign } from 'node:crypto';

/**
 * Dev and test tokens: `npm run token`, the tests and the benchmark sign with these. Kept out of
 * src/ so that nothing able to mint tokens ships in dist/.
 *
 * Signed with node:crypto rather than jose (which verifies them in src/auth): jose only signs
 * asynchronously, and a synchronous `mintToken` lets tests and helpers build tokens inline.
 */

export interface MintOptions {
  sub: string;
  name?: string;
  roles?: string[];
  /** Lifetime in seconds (default 3600); negative for a token that has already expired. */
  expiresInSeconds?: number;
  issuer?: string;
  audience?: string;
  rolesClaim?: string;
}

/** An HMAC secret, or a private key (RSA or EC) for asymmetric algorithms. */
export type SignatureKey = string | Buffer | KeyObject;

/** Signs an HS256 user token with `iat`, `exp` and the claims the options ask for. */
export function mintToken(secret: string, options: MintOptions): string {
  const iat = Math.floor(Date.now() / 1000);
  return signCompact(
    { alg: 'HS256', typ: 'JWT' },
    {
      [options.rolesClaim ?? 'roles']: options.roles ?? [],
      ...(options.name !== undefined ? { name: options.name } : {}),
      sub: options.sub,
      iat,
      exp: iat + (options.expiresInSeconds ?? 3600),
      ...(options.issuer !== undefined ? { iss: options.issuer } : {}),
      ...(options.audience !== undefined ? { aud: options.audience } : {}),
    },
    secret,
  );
}

/**
 * A compact JWS of exactly this header and payload (a string payload is taken as is), whatever
 * they claim, so tests can build the tokens an attacker would. The hash is the one `header.alg`
 * names (SHA-256 unless it ends in 384 or 512); a secret signs with HMAC, a private key with
 * RSASSA-PKCS1-v1_5 or ECDSA (JWS's raw r||s form). `key` is required so that an unsigned
 * token (`undefined`, for `alg: none` attacks) is always asked for, never an accident.
 */
export function signCompact(
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
  key: SignatureKey | undefined,
): string {
  const encode = (part: Record<string, unknown> | string): string =>
    Buffer.from(typeof part === 'string' ? part : JSON.stringify(part)).toString('base64url');
  const input = `${encode(header)}.${encode(payload)}`;
  const hash = `sha${/(384|512)$/.exec(String(header.alg))?.[1] ?? '256'}`;
  let signature = '';
  if (key instanceof KeyObject && key.type === 'private') {
    signature = sign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString(
      'base64url',
    );
  } else if (key !== undefined) {
    signature = createHmac(hash, key).update(input).digest('base64url');
  }
  return `${input}.${signature}`;
}
