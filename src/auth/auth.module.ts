import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';

import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { RolesGuard } from './roles.guard';
import { TokenVerifier } from './token-verifier.service';

/**
 * Authentication for the whole app: every route needs a user unless `@Public()`, `@Roles()`
 * adds a role check. TokenVerifier is exported for the WebSocket upgrade path.
 */
@Module({
  providers: [
    TokenVerifier,
    JwtStrategy,
    // Global guards run in this order: who the caller is, then what they may do.
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RolesGuard },
  ],
  exports: [TokenVerifier],
})
export class AuthModule {}
