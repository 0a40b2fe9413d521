import { Module } from '@nestjs/common';
import type { Provider } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { Database, DATABASE, DatabaseModule } from '../../database/database.module';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { SecretCipher } from '../../plugins/secrets/secret-cipher';
import { AuthModule } from '../auth.module';
import { TokenVerifier } from '../token-verifier.service';
import { AuthController, SIGN_IN } from './auth.controller';
import { OidcProviderClient } from './oidc-provider-client';
import { PgSessionStore } from './pg-session-store';
import { MemorySessionStore } from './session-store';
import type { SessionStore } from './session-store';
import { OIDC_PROVIDER_CLIENT, SESSION_STORE, SignInService } from './sign-in.service';

const providerClient: Provider = {
  provide: OIDC_PROVIDER_CLIENT,
  inject: [PorticoConfig],
  useFactory: (config: PorticoConfig): OidcProviderClient | null =>
    config.OIDC_ISSUER === undefined || config.OIDC_CLIENT_ID === undefined
      ? null
      : new OidcProviderClient({
          issuer: config.OIDC_ISSUER,
          clientId: config.OIDC_CLIENT_ID,
          ...(config.OIDC_CLIENT_SECRET !== undefined
            ? { clientSecret: config.OIDC_CLIENT_SECRET }
            : {}),
        }),
};

/** Sessions in the database with DATABASE_URL (every replica sees them), else in memory. */
const sessionStore: Provider = {
  provide: SESSION_STORE,
  inject: [PorticoConfig, DATABASE],
  useFactory: (config: PorticoConfig, database: Database | null): SessionStore | null => {
    if (config.OIDC_ISSUER === undefined) return null;
    const key = SecretCipher.parseKey(config.SECRETS_KEY);
    if (database === null || key === undefined) return new MemorySessionStore();
    return new PgSessionStore(database.pool, new SecretCipher(key));
  },
};

const signIn: Provider = {
  provide: SIGN_IN,
  inject: [PorticoConfig, TokenVerifier, OIDC_PROVIDER_CLIENT, SESSION_STORE, PorticoMetrics],
  useFactory: (
    config: PorticoConfig,
    verifier: TokenVerifier,
    client: OidcProviderClient | null,
    store: SessionStore | null,
    metrics: PorticoMetrics,
  ): SignInService | null =>
    client === null || store === null
      ? null
      : new SignInService(config, verifier, client, store, metrics),
};

/**
 * Single sign-on with OpenID Connect (docs/operations.md, "Single sign-on"), when OIDC_ISSUER is
 * set: the `/api/auth/*` routes, browser sessions, and the Portico tokens issued for them.
 * Without it, `/api/auth/session` says so and the other routes answer 404.
 */
@Module({
  imports: [AuthModule, DatabaseModule],
  controllers: [AuthController],
  providers: [providerClient, sessionStore, signIn],
})
export class OidcModule {}
