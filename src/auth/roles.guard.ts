import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import { AuthException, AuthExceptionCode } from './auth.exception';
import type { AuthenticatedRequest } from './principal';
import { REQUIRED_ROLES } from './roles.decorator';

/** Global guard, runs after JwtAuthGuard: 403 when the user lacks a role the route requires. */
@Injectable()
export class RolesGuard implements CanActivate {
  public constructor(private readonly reflector: Reflector) {}

  public canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_ROLES, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (required === undefined || required.length === 0) return true;
    const user = context.switchToHttp().getRequest<AuthenticatedRequest>().user;
    // Only reachable when a route is both @Public() and @Roles(): a role needs a user.
    if (user === undefined) {
      throw new AuthException(
        AuthExceptionCode.MISSING_CREDENTIALS,
        'missing credentials',
      ).toHttpException();
    }
    const missing = required.filter((role) => !user.roles.includes(role));
    if (missing.length > 0) {
      throw new AuthException(
        AuthExceptionCode.FORBIDDEN_ROLE,
        `requires role ${missing.join(', ')}`,
      ).toHttpException();
    }
    return true;
  }
}
