import { ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';

import { AuthException } from './auth.exception';
import type { Principal } from './principal';
import { IS_PUBLIC } from './public.decorator';
import { toAuthException } from './token-verifier.service';

/** Global guard: every route needs a valid token unless marked `@Public()`. */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  public constructor(private readonly reflector: Reflector) {
    super();
  }

  public override canActivate(
    context: ExecutionContext,
  ): boolean | Promise<boolean> | Observable<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic === true) return true;
    return super.canActivate(context);
  }

  public override handleRequest<TUser = Principal>(
    err: unknown,
    user: unknown,
    info: unknown,
  ): TUser {
    if (err === null && user !== false && user !== undefined && user !== null) return user as TUser;
    const cause = err ?? info;
    // passport-jwt reports a missing token as a plain Error with this text.
    const message =
      cause instanceof Error && cause.message === 'No auth token'
        ? 'missing credentials'
        : cause instanceof AuthException || cause instanceof Error
          ? toAuthException(cause).message
          : 'invalid credentials';
    throw new UnauthorizedException(message);
  }
}
