import { createParamDecorator, ExecutionContext, UnauthorizedException } from '@nestjs/common';

import type { AuthenticatedRequest, Principal } from './principal';

/** The authenticated user of the request, as set by JwtAuthGuard. */
export const CurrentUser = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): Principal => {
    const user = ctx.switchToHttp().getRequest<AuthenticatedRequest>().user;
    // Only a @Public() route has no user; asking for one there must not yield undefined.
    if (user === undefined) throw new UnauthorizedException('missing credentials');
    return user;
  },
);
