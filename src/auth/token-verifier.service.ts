import type { KeyObject } from 'node:crypto';

import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  Optional,
} from '@nestjs/common';
import { decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWSHeaderParameters, JWTPayload } from 'jose';

import { ConfigException, ConfigExceptionCode } from '../config/config.exception';
import { PorticoConfig } from '../config/portico-config';
import { AuthException, AuthExceptionCode } from './auth.exception';
import { HmacKeySource } from './hmac-key-source';
import { SecretCipher } from '../plugins/secrets/secret-cipher';
import { JWKS_OPTIONS, JwksKeySource } from './jwks-key-source';
import type { JwksOptions } from './jwks-key-source';
import { isJwtAlgorithm, keyFitsAlgorithm } from './key-source';
import type { JwtAlgorithm, KeySource } from './key-source';
import type { Principal } from './principal';
import { SESSION_TOKEN_KID, SessionTokenSigner } from './oidc/session-token';
import type { SessionTokenSubject } from './oidc/session-token';
import { VerifiedTokenCache } from './verified-token-cache';

/** Allowed clock difference between Portico and the token issuer, for `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 30;

/** What every token is checked against (jose's `jwtVerify` options). */
export interface TokenVerifyOptions {
  readonly algorithms: JwtAlgorithm[];
  /** Seconds of skew allowed on `exp` and `nbf`. */
  readonly clockTolerance: number;
  readonly issuer?: string;
  readonly audience?: string;
}

/** An HMAC secret or a public key, always as a KeyObject so its kind is never guessed. */
export type VerificationKey = KeyObject;

/**
 * The one place user JWTs are verified: the WebSocket upgrade and JwtStrategy (HTTP) both call
 * `verify`, so both share its rules and its cache of verified tokens. Signatures and claims are
 * checked by jose. Keys come from JWT_SECRET (HS256) and/or JWT_JWKS_URL (RS256, ES256); `keyFor`
 * picks the source by the token's `alg` and checks the key it gets is of that kind, so
 * `alg: none` and algorithm confusion are rejected.
 */
@Injectable()
export class TokenVerifier implements OnApplicationBootstrap, OnModuleDestroy {
  public readonly options: TokenVerifyOptions;
  private readonly logger = new Logger(TokenVerifier.name);
  private readonly sources: readonly KeySource[];
  private readonly jwks: JwksKeySource | undefined;
  private readonly cache = new VerifiedTokenCache();
  /** The clock cache entries age by (the JWKS source's, so tests can move both together). */
  private readonly now: () => number;
  /** Portico's own tokens for signed-in browsers (OIDC_ISSUER set), else undefined. */
  private readonly sessionTokens: SessionTokenSigner | undefined;
  /** Sessions signed out on this replica → when their last token runs out (ms). */
  private readonly endedSessions = new Map<string, number>();
  private readonly sessionEndListeners = new Set<(sid: string) => void>();

  public constructor(
    private readonly config: PorticoConfig,
    @Optional() @Inject(JWKS_OPTIONS) jwksOptions: Partial<JwksOptions> = {},
  ) {
    this.now = jwksOptions.now ?? Date.now;
    this.jwks =
      config.JWT_JWKS_URL === undefined
        ? undefined
        : new JwksKeySource(new URL(config.JWT_JWKS_URL), jwksOptions);
    this.sources = [
      ...(config.JWT_SECRET === undefined ? [] : [new HmacKeySource(config.JWT_SECRET)]),
      ...(this.jwks === undefined ? [] : [this.jwks]),
    ];
    const secretsKey = SecretCipher.parseKey(config.SECRETS_KEY);
    this.sessionTokens =
      config.OIDC_ISSUER !== undefined && secretsKey !== undefined
        ? new SessionTokenSigner(secretsKey)
        : undefined;
    if (this.sources.length === 0 && this.sessionTokens === undefined) {
      throw new ConfigException(
        ConfigExceptionCode.INVALID_VALUE,
        'JWT_SECRET or JWT_JWKS_URL must be set to verify user tokens',
      );
    }
    this.options = Object.freeze({
      algorithms: this.sources.flatMap((source) => source.algorithms),
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(config.JWT_ISSUER !== undefined ? { issuer: config.JWT_ISSUER } : {}),
      ...(config.JWT_AUDIENCE !== undefined ? { audience: config.JWT_AUDIENCE } : {}),
    });
  }

  public onApplicationBootstrap(): void {
    // Not awaited: an unreachable JWKS endpoint is logged and answered with 401, not a failed start.
    void this.jwks?.warmUp();
  }

  public onModuleDestroy(): void {
    this.jwks?.close();
  }

  /** The user a token stands for; rejects with an AuthException for any bad token. */
  public async verify(token: string): Promise<Principal> {
    const now = this.now();
    const cached = this.cache.get(token, now);
    if (cached !== undefined) {
      if (cached.sid !== undefined && this.endedSessions.has(cached.sid)) throw sessionEnded();
      return cached;
    }
    if (this.sessionTokens !== undefined && isSessionToken(token))
      return this.verifySessionToken(this.sessionTokens, token, now);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header) => this.keyFor(header), this.options));
    } catch (err) {
      throw this.failure(err);
    }
    const principal = this.toPrincipal(payload);
    const { exp } = principal;
    // When verification would start refusing it, on the cache's clock (`exp` is wall time).
    const expiresAt =
      typeof exp === 'number'
        ? now + (exp + CLOCK_TOLERANCE_SECONDS) * 1000 - Date.now()
        : undefined;
    this.cache.set(token, principal, now, expiresAt);
    return principal;
  }

  /**
   * A short-lived token for a signed-in browser (`POST /api/auth/token`), valid until `expiresAt`
   * (ms since the epoch) on every replica.
   */
  public issueSessionToken(subject: SessionTokenSubject, expiresAt: number): Promise<string> {
    if (this.sessionTokens === undefined) throw new Error('single sign-on is not configured');
    return this.sessionTokens.sign(subject, expiresAt);
  }

  /**
   * Refuses the tokens of a signed-out session from now on (on this replica; elsewhere they run
   * out by themselves within SESSION_TOKEN_TTL_MS).
   */
  public endSession(sid: string, lastTokenExpiresAt: number): void {
    const now = Date.now();
    for (const [ended, until] of this.endedSessions)
      if (until <= now) this.endedSessions.delete(ended);
    this.endedSessions.set(sid, lastTokenExpiresAt);
    for (const listener of this.sessionEndListeners) listener(sid);
  }

  /**
   * Calls `listener` with the `sid` of every session signed out on this replica, so that what
   * holds a connection opened with its tokens closes it (4401). Returns the unsubscribe.
   */
  public onSessionEnd(listener: (sid: string) => void): () => void {
    this.sessionEndListeners.add(listener);
    return () => this.sessionEndListeners.delete(listener);
  }

  private async verifySessionToken(
    signer: SessionTokenSigner,
    token: string,
    now: number,
  ): Promise<Principal> {
    let claims;
    try {
      claims = await signer.verify(token);
    } catch (err) {
      throw this.failure(err);
    }
    if (this.endedSessions.has(claims.sid)) throw sessionEnded();
    const principal: Principal = {
      id: claims.id,
      name: claims.name,
      roles: claims.roles,
      iat: claims.iat,
      exp: claims.exp,
      sid: claims.sid,
    };
    this.cache.set(token, principal, now, now + claims.exp * 1000 - Date.now());
    return principal;
  }

  /**
   * The key a token with this header must be signed with (jose asks for it once the token
   * parses and its `alg` is allowed): the source is chosen by the `alg`, and the key must be of
   * the kind that `alg` means (never a public key for HS256, never a secret for RS256).
   */
  public keyFor(header: JWSHeaderParameters): VerificationKey | Promise<VerificationKey> {
    const { alg } = header;
    if (!isJwtAlgorithm(alg)) throw invalidToken();
    const source = this.sources.find((s) => s.algorithms.includes(alg));
    if (source === undefined) throw invalidToken();
    const key = source.keyFor(header);
    // The HMAC secret comes back as is (no promise to wait for); a JWKS key may need a fetch.
    return key instanceof Promise ? key.then((k) => fitting(k, alg)) : fitting(key, alg);
  }

  /** Claims of a verified token → Principal; a token without `sub` is invalid. */
  private toPrincipal(payload: JWTPayload): Principal {
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no subject');
    }
    const exp =
      typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp : undefined;
    // A token without `exp` would be a session that never ends (docs/plugin-contract.md §5).
    if (exp === undefined && !this.config.JWT_ALLOW_NO_EXP)
      throw new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no expiry');
    const name = [payload.name, payload.preferred_username].find(
      (v): v is string => typeof v === 'string' && v.length > 0,
    );
    return {
      id: payload.sub,
      name: name ?? payload.sub,
      roles: rolesFrom(payload[this.config.JWT_ROLES_CLAIM]),
      iat: typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : 0,
      exp,
    };
  }

  /**
   * Any verification error as an AuthException. Clients get a fixed message; the library's
   * reason (never the token) goes to the debug log for operators.
   */
  private failure(err: unknown): AuthException {
    if (err instanceof AuthException) return err;
    this.logger.debug({
      event: 'token_rejected',
      reason: err instanceof Error ? err.message : 'unknown',
    });
    if (err instanceof errors.JWTExpired)
      return new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired');
    if (
      err instanceof errors.JWTClaimValidationFailed &&
      err.claim === 'nbf' &&
      err.reason === 'check_failed'
    )
      return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid');
    return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
  }
}

/**
 * When Portico stops accepting a verified user's token, and closes their sockets (ms since the
 * epoch): its `exp`, plus the clock tolerance for tokens from another issuer.
 */
export function acceptedUntil(user: Principal): number | undefined {
  if (user.exp === undefined) return undefined;
  return (user.exp + (user.sid !== undefined ? 0 : CLOCK_TOLERANCE_SECONDS)) * 1000;
}

/** Whether a token's header names Portico's own session-token key (the signature is not checked here). */
function isSessionToken(token: string): boolean {
  try {
    return decodeProtectedHeader(token).kid === SESSION_TOKEN_KID;
  } catch {
    return false;
  }
}

function sessionEnded(): AuthException {
  return new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'session signed out');
}

/** `key`, if it is of the kind `alg` needs; else the token is invalid. */
function fitting(key: VerificationKey, alg: JwtAlgorithm): VerificationKey {
  if (!keyFitsAlgorithm(key, alg)) throw invalidToken();
  return key;
}

function invalidToken(): AuthException {
  return new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
}

/** Roles claim as an array of strings or a space/comma separated string. */
function rolesFrom(claim: unknown): string[] {
  const raw: unknown[] =
    typeof claim === 'string' ? claim.split(/[\s,]+/) : Array.isArray(claim) ? claim : [];
  const roles = raw
    .filter((r): r is string => typeof r === 'string')
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  return [...new Set(roles)];
}
