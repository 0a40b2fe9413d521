import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';

import { CrossSiteGuard } from './cross-site.guard';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { RolesGuard } from './roles.guard';
import { TokenVerifier } from './token-verifier.service';

/**
 * Authentication for the whole app: every route needs a user unless `@Public()` (passport's
 * `jwt` strategy behind `AuthGuard('jwt')`), a cookie or `?token=` credential needs a
 * first-party Origin where it could change state, `@Roles()` adds a role check. TokenVerifier is
 * exported for the WebSocket upgrade path, which verifies with the same call as JwtStrategy.
 */
@Module({
  providers: [
    TokenVerifier,
    JwtStrategy,
    // Global guards run in this order: who the caller is, whether their browser was tricked
    // into asking (CSRF), then what they may do.
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: CrossSiteGuard },
    { provide: APP_GUARD, useClass: RolesGuard },
  ],
  exports: [TokenVerifier],
})
export class AuthModule {}
