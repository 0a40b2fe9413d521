import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import type { Principal } from './principal';
import { REQUIRED_ROLES } from './roles.decorator';

/** Global guard after JwtAuthGuard: 403 when the user lacks a role the route requires. */
@Injectable()
export class RolesGuard implements CanActivate {
  public constructor(private readonly reflector: Reflector) {}

  public canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_ROLES, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (required === undefined || required.length === 0) return true;
    const user = context.switchToHttp().getRequest<{ user?: Principal }>().user;
    const missing = required.filter((r) => !(user?.roles ?? []).includes(r));
    if (missing.length > 0) throw new ForbiddenException(`requires role ${missing.join(', ')}`);
    return true;
  }
}
