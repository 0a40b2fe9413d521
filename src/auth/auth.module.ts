import { Module } from '@nestjs/common';

// Placeholder until the auth module lands: TokenVerifier, guards, JwtStrategy.
@Module({})
export class AuthModule {}
