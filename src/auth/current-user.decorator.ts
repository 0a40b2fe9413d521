import { createParamDecorator, ExecutionContext } from '@nestjs/common';

import type { Principal } from './principal';

/** The authenticated user of the request (set by JwtAuthGuard). */
export const CurrentUser = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): Principal =>
    ctx.switchToHttp().getRequest<{ user: Principal }>().user,
);
