import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard, IAuthModuleOptions } from '@nestjs/passport';

import { AuthException, AuthExceptionCode } from './auth.exception';
import { JWT_STRATEGY } from './jwt.strategy';
import type { JwtAuthenticateOptions } from './jwt.strategy';
import type { Principal } from './principal';
import { IS_PUBLIC } from './public.decorator';
import { TokenVerifier } from './token-verifier.service';

/**
 * Global guard: every route needs a valid token unless it or its controller is `@Public()`.
 * Passport's `jwt` strategy (JwtStrategy) sets `req.user` to the Principal; a refused caller
 * gets 401 with the reason (`missing credentials`, `invalid token`, `token expired`, ...).
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard(JWT_STRATEGY) {
  public constructor(
    private readonly reflector: Reflector,
    private readonly verifier: TokenVerifier,
  ) {
    super();
  }

  public override async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic === true) return true;
    // AuthGuard's canActivate is async; its declared type is CanActivate's wider union.
    return super.canActivate(context) as Promise<boolean>;
  }

  /**
   * Names this app's verifier for the strategy: the `jwt` entry in passport's process-wide
   * registry may belong to another app in the same process (see JwtStrategy).
   */
  public override getAuthenticateOptions(): IAuthModuleOptions {
    return { tokenVerifier: this.verifier } satisfies JwtAuthenticateOptions;
  }

  /**
   * Passport's outcome → the user, or the 401 the strategy's AuthException describes. An error
   * (not a refusal) is a bug and is rethrown for the exception filter to answer 500.
   */
  public override handleRequest<TUser = Principal>(
    err: unknown,
    user: unknown,
    info: unknown,
  ): TUser {
    if (err !== null && err !== undefined) throw err;
    // RequestStrategy only ever succeeds with a Principal; the base signature is generic.
    if (user !== false && user !== null && user !== undefined) return user as TUser;
    const refusal =
      info instanceof AuthException
        ? info
        : new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
    throw refusal.toHttpException();
  }
}
