import { Injectable } from '@nestjs/common';
import { JsonWebTokenError, NotBeforeError, TokenExpiredError, verify } from 'jsonwebtoken';
import type { JwtPayload, VerifyOptions } from 'jsonwebtoken';

import { PorticoConfig } from '../config/portico-config';
import { AuthException, AuthExceptionCode } from './auth.exception';
import type { Principal } from './principal';

/** Allowed clock difference between Portico and the token issuer. */
export const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * Verifies user JWTs for both the HTTP guard (through JwtStrategy) and the WebSocket handshake.
 * The algorithm is pinned, so `alg: none` and algorithm confusion are rejected.
 */
@Injectable()
export class TokenVerifier {
  public readonly options: VerifyOptions & { algorithms: ['HS256'] };

  public constructor(private readonly config: PorticoConfig) {
    this.options = {
      algorithms: ['HS256'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(config.JWT_ISSUER !== undefined ? { issuer: config.JWT_ISSUER } : {}),
      ...(config.JWT_AUDIENCE !== undefined ? { audience: config.JWT_AUDIENCE } : {}),
    };
  }

  /** The key tokens are checked with; JWKS (RS256/ES256) keys arrive with the security issue. */
  public get secret(): string {
    if (this.config.JWT_SECRET === undefined) {
      throw new AuthException(
        AuthExceptionCode.INVALID_TOKEN,
        'JWKS token verification is not supported yet; set JWT_SECRET',
      );
    }
    return this.config.JWT_SECRET;
  }

  public async verify(token: string): Promise<Principal> {
    let payload: string | JwtPayload;
    try {
      payload = verify(token, this.secret, this.options);
    } catch (err) {
      throw toAuthException(err);
    }
    return this.toPrincipal(payload);
  }

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
      iat: typeof payload.iat === 'number' ? payload.iat : 0,
    };
  }
}

function rolesFrom(claim: unknown): string[] {
  if (typeof claim === 'string') return claim.split(/[\s,]+/).filter((r) => r.length > 0);
  if (Array.isArray(claim)) return claim.filter((r): r is string => typeof r === 'string');
  return [];
}

export function toAuthException(err: unknown): AuthException {
  if (err instanceof AuthException) return err;
  if (err instanceof TokenExpiredError)
    return new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired');
  if (err instanceof NotBeforeError)
    return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid');
  if (err instanceof JsonWebTokenError)
    return new AuthException(AuthExceptionCode.INVALID_TOKEN, `invalid token (${err.message})`);
  return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
}
