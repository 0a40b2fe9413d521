import type { IncomingMessage } from 'node:http';

/** The authenticated user behind a request, derived from a verified JWT. */
export interface Principal {
  /** `sub` claim. */
  readonly id: string;
  /** `name`, else `preferred_username`, else `sub`. */
  readonly name: string;
  /** From the roles claim (JWT_ROLES_CLAIM); `admin` manages plugins. */
  readonly roles: readonly string[];
  /** `iat` claim in seconds since the epoch (0 when absent). */
  readonly iat: number;
  /** `exp` claim in seconds since the epoch; undefined only when JWT_ALLOW_NO_EXP allows it. */
  readonly exp: number | undefined;
  /**
   * The single sign-on session a Portico-issued token belongs to (`sid`); undefined for tokens
   * from JWT_SECRET or JWT_JWKS_URL.
   */
  readonly sid?: string;
}

export const ADMIN_ROLE = 'admin';

/** A request that went through JwtAuthGuard: `user` is set on every route not marked `@Public()`. */
export interface AuthenticatedRequest extends IncomingMessage {
  user?: Principal;
}
