import { ForbiddenException, HttpException, UnauthorizedException } from '@nestjs/common';

export enum AuthExceptionCode {
  /** No token in any accepted place (HTTP 401). */
  MISSING_CREDENTIALS = 'MISSING_CREDENTIALS',
  /** Bad signature, algorithm, issuer, audience, `nbf` or claims (HTTP 401). */
  INVALID_TOKEN = 'INVALID_TOKEN',
  /** The token needs a key from JWT_JWKS_URL and that endpoint cannot be reached (HTTP 401). */
  KEYS_UNAVAILABLE = 'KEYS_UNAVAILABLE',
  /** `exp` has passed, beyond the clock tolerance (HTTP 401). */
  EXPIRED_TOKEN = 'EXPIRED_TOKEN',
  /** Authenticated, but without a role the route needs (HTTP 403). */
  FORBIDDEN_ROLE = 'FORBIDDEN_ROLE',
  /** A cookie or `?token=` credential on a request another site may have made (HTTP 403). */
  CROSS_SITE_REQUEST = 'CROSS_SITE_REQUEST',
}

/** Why a caller was not let in; the message is shown to clients and never contains the token. */
export class AuthException extends Error {
  public constructor(
    public readonly code: AuthExceptionCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuthException';
  }

  /** The HTTP answer: 403 for a missing role or a cross-site request, 401 for everything else. */
  public toHttpException(): HttpException {
    return this.code === AuthExceptionCode.FORBIDDEN_ROLE ||
      this.code === AuthExceptionCode.CROSS_SITE_REQUEST
      ? new ForbiddenException(this.message)
      : new UnauthorizedException(this.message);
  }
}
