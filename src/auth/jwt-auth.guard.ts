import type { ServerResponse } from 'node:http';

import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import passport from 'passport';

import { AuthException, AuthExceptionCode } from './auth.exception';
import { extractCredential } from './credential-extractor';
import { JwtStrategy } from './jwt.strategy';
import type { AuthenticatedRequest, Principal } from './principal';
import { IS_PUBLIC } from './public.decorator';
import { TokenVerifier } from './token-verifier.service';

/**
 * Global guard: every route needs a valid token unless it or its controller is `@Public()`.
 * Sets `req.user` to the Principal; answers 401 with the reason otherwise.
 */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  public constructor(
    private readonly reflector: Reflector,
    private readonly strategy: JwtStrategy,
    private readonly verifier: TokenVerifier,
  ) {}

  public async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic === true) return true;
    const http = context.switchToHttp();
    const req = http.getRequest<AuthenticatedRequest>();
    if (extractCredential(req) === undefined) {
      throw new AuthException(
        AuthExceptionCode.MISSING_CREDENTIALS,
        'missing credentials',
      ).toHttpException();
    }
    req.user = await this.authenticate(req, http.getResponse<ServerResponse>());
    return true;
  }

  /**
   * Runs this module's strategy instance rather than the one registered globally under
   * `jwt`, so several apps in one process (tests) each keep their own keys and options.
   */
  private authenticate(req: AuthenticatedRequest, res: ServerResponse): Promise<Principal> {
    return new Promise((resolve, reject) => {
      const refuse = (cause: unknown): void =>
        reject(this.verifier.failure(cause).toHttpException());
      const middleware = passport.authenticate(
        this.strategy,
        { session: false },
        (err: unknown, user: Principal | false | null | undefined, info: unknown) => {
          // `err` is an exception from validate(): a claims problem, or a bug (500).
          if (err instanceof AuthException) refuse(err);
          else if (err !== null && err !== undefined) reject(err);
          else if (user === false || user === null || user === undefined) refuse(info);
          else resolve(user);
        },
      );
      middleware(req, res, (err?: unknown) =>
        reject(err ?? new Error('passport ended without a result')),
      );
    });
  }
}
