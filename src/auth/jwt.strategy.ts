import type { IncomingMessage } from 'node:http';

import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';

import { AuthException, AuthExceptionCode } from './auth.exception';
import { extractCredential } from './credential-extractor';
import type { Principal } from './principal';
import { RequestStrategy } from './request.strategy';
import { TokenVerifier } from './token-verifier.service';

export const JWT_STRATEGY = 'jwt';

/** The `passport.authenticate()` options JwtAuthGuard passes for each request. */
export interface JwtAuthenticateOptions {
  /** The verifier of the app handling the request (see JwtStrategy). */
  readonly tokenVerifier: TokenVerifier;
}

/**
 * The `jwt` passport strategy: finds the credential with extractCredential (the contract's
 * order) and has TokenVerifier.verify judge it, the very call the WebSocket upgrade makes, so
 * HTTP and WebSocket share one set of rules and one cache of verified tokens.
 *
 * Why not passport-jwt: it always verifies with its own jsonwebtoken call (only the key can be
 * supplied), so it cannot delegate to TokenVerifier, would keep a second JWT library and a
 * second rule set in sync with jose's, and would bypass the cache. What it would add on top
 * (finding the token, mapping claims) is done here by extractCredential and TokenVerifier, so
 * the strategy is built on passport-strategy's base class (RequestStrategy).
 *
 * Passport keeps strategies in one process-wide registry by name, so with several apps in a
 * process (tests) the `jwt` entry is the last app's strategy. JwtAuthGuard therefore passes its
 * own app's verifier in the authenticate options; the injected one is only the fallback for a
 * caller that passes none.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(
  RequestStrategy<JwtAuthenticateOptions>,
  JWT_STRATEGY,
) {
  public constructor(private readonly verifier: TokenVerifier) {
    super();
  }

  /** The principal of the request's token; rejects with an AuthException when there is none. */
  public async validate(
    req: IncomingMessage,
    options: Partial<JwtAuthenticateOptions>,
  ): Promise<Principal> {
    const credential = extractCredential(req);
    if (credential === undefined) {
      throw new AuthException(AuthExceptionCode.MISSING_CREDENTIALS, 'missing credentials');
    }
    return (options.tokenVerifier ?? this.verifier).verify(credential.token);
  }
}
