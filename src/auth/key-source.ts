import type { KeyObject } from 'node:crypto';

import type { JWSHeaderParameters } from 'jose';

/** Every algorithm Portico accepts: HS256 with JWT_SECRET, RS256/ES256 from JWT_JWKS_URL. */
export const JWT_ALGORITHMS = ['HS256', 'RS256', 'ES256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Smallest RSA modulus a JWKS key may have. */
export const MIN_RSA_MODULUS_BITS = 2048;

/** Where verification keys come from, and the only algorithms they may be used with. */
export interface KeySource {
  readonly algorithms: readonly JwtAlgorithm[];
  /**
   * The key for a token with this header; throws (or rejects with) an AuthException when there
   * is none. A source that holds its key answers synchronously: a promise per token was a
   * measurable part of a handshake's verification (docs/benchmarks.md, issue 15).
   */
  keyFor(header: JWSHeaderParameters): KeyObject | Promise<KeyObject>;
}

export function isJwtAlgorithm(alg: unknown): alg is JwtAlgorithm {
  return typeof alg === 'string' && (JWT_ALGORITHMS as readonly string[]).includes(alg);
}

/**
 * Whether `key` is the kind of key `alg` means: an HMAC secret for HS256, an RSA public key of
 * at least 2048 bits for RS256, a P-256 public key for ES256. This is what makes algorithm
 * confusion impossible, whatever a key source hands out.
 */
export function keyFitsAlgorithm(key: KeyObject, alg: JwtAlgorithm): boolean {
  switch (alg) {
    case 'HS256':
      return key.type === 'secret';
    case 'RS256':
      return (
        key.type === 'public' &&
        key.asymmetricKeyType === 'rsa' &&
        (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_MODULUS_BITS
      );
    case 'ES256':
      return (
        key.type === 'public' &&
        key.asymmetricKeyType === 'ec' &&
        key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      );
  }
}
