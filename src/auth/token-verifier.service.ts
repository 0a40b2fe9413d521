import { Injectable, Logger } from '@nestjs/common';
import { NotBeforeError, TokenExpiredError, verify } from 'jsonwebtoken';
import type { Algorithm, JwtPayload, VerifyOptions } from 'jsonwebtoken';

import { PorticoConfig } from '../config/portico-config';
import { AuthException, AuthExceptionCode } from './auth.exception';
import type { Principal } from './principal';

/** Allowed clock difference between Portico and the token issuer, for `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 30;

/** The jsonwebtoken options every token is checked with. */
export type TokenVerifyOptions = Readonly<
  Omit<VerifyOptions, 'algorithms' | 'issuer' | 'audience'> & {
    algorithms: Algorithm[];
    issuer?: string;
    audience?: string;
  }
>;

/** An HMAC secret, or a public key as PEM (what a JWKS source will hand out). */
export type VerificationKey = string | Buffer;

/** Where verification keys come from, and the only algorithms they may be used with. */
interface KeySource {
  readonly algorithms: Algorithm[];
  keyFor(token: string): Promise<VerificationKey>;
}

/**
 * The one place user JWTs are verified: the WebSocket handshake calls `verify`, and JwtStrategy
 * (HTTP) is built from the same `keyFor`, `options` and `toPrincipal`. Algorithms are pinned to
 * the key source, so `alg: none` and algorithm confusion are rejected.
 */
@Injectable()
export class TokenVerifier {
  public readonly options: TokenVerifyOptions;
  private readonly logger = new Logger(TokenVerifier.name);
  private readonly keys: KeySource;

  public constructor(private readonly config: PorticoConfig) {
    this.keys = this.keySource();
    this.options = Object.freeze({
      algorithms: this.keys.algorithms,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(config.JWT_ISSUER !== undefined ? { issuer: config.JWT_ISSUER } : {}),
      ...(config.JWT_AUDIENCE !== undefined ? { audience: config.JWT_AUDIENCE } : {}),
    });
  }

  /** The user a token stands for; rejects with an AuthException for any bad token. */
  public async verify(token: string): Promise<Principal> {
    let payload: string | JwtPayload;
    try {
      payload = verify(token, await this.keyFor(token), this.options);
    } catch (err) {
      throw this.failure(err);
    }
    return this.toPrincipal(payload);
  }

  /** The key `token` must be signed with. */
  public keyFor(token: string): Promise<VerificationKey> {
    return this.keys.keyFor(token);
  }

  /** Claims of a verified token → Principal; a token without `sub` is invalid. */
  public toPrincipal(payload: string | JwtPayload): Principal {
    if (typeof payload === 'string' || typeof payload.sub !== 'string' || payload.sub === '') {
      throw new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no subject');
    }
    const name = [payload.name, payload.preferred_username].find(
      (v): v is string => typeof v === 'string' && v.length > 0,
    );
    return {
      id: payload.sub,
      name: name ?? payload.sub,
      roles: rolesFrom(payload[this.config.JWT_ROLES_CLAIM]),
      iat: typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : 0,
    };
  }

  /**
   * Any verification error as an AuthException. Clients get a fixed message; the library's
   * reason (never the token) goes to the debug log for operators.
   */
  public failure(err: unknown): AuthException {
    if (err instanceof AuthException) return err;
    this.logger.debug({
      event: 'token_rejected',
      reason: err instanceof Error ? err.message : 'unknown',
    });
    if (err instanceof TokenExpiredError)
      return new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired');
    if (err instanceof NotBeforeError)
      return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid');
    return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
  }

  private keySource(): KeySource {
    const secret = this.config.JWT_SECRET;
    if (secret !== undefined) {
      return { algorithms: ['HS256'], keyFor: () => Promise.resolve(secret) };
    }
    // Only JWT_JWKS_URL is set. Fetching RS256/ES256 keys from it lands with the security
    // issue; until then every token is refused rather than checked against nothing.
    this.logger.warn({
      event: 'jwks_unsupported',
      message: 'JWT_JWKS_URL is not supported yet: every token will be rejected; set JWT_SECRET',
    });
    return {
      algorithms: ['RS256', 'ES256'],
      keyFor: () =>
        Promise.reject(
          new AuthException(
            AuthExceptionCode.INVALID_TOKEN,
            'tokens from JWT_JWKS_URL cannot be verified by this version',
          ),
        ),
    };
  }
}

/** Roles claim as an array of strings or a space/comma separated string. */
function rolesFrom(claim: unknown): string[] {
  const raw: unknown[] =
    typeof claim === 'string' ? claim.split(/[\s,]+/) : Array.isArray(claim) ? claim : [];
  const roles = raw
    .filter((r): r is string => typeof r === 'string')
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  return [...new Set(roles)];
}
