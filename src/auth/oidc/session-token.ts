import { createSecretKey, hkdfSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

import { jwtVerify, SignJWT } from 'jose';
import type { JWTPayload } from 'jose';

/** `kid` of the tokens Portico issues to signed-in browsers: how the verifier tells them apart. */
export const SESSION_TOKEN_KID = 'portico-session';
/** `iss` and `aud` of those tokens. */
export const SESSION_TOKEN_ISSUER = 'portico';
export const SESSION_TOKEN_AUDIENCE = 'portico';

/** Who a session token is for. */
export interface SessionTokenSubject {
  readonly id: string;
  readonly name: string;
  readonly roles: readonly string[];
  /** The sign-in session's public id (`sid`), so a signed-out session's tokens can be refused. */
  readonly sid: string;
}

/** A verified session token's claims. */
export interface SessionTokenClaims extends SessionTokenSubject {
  readonly iat: number;
  readonly exp: number;
}

/**
 * Signs and verifies the short-lived tokens a signed-in browser gets (HS256). The key is derived
 * from SECRETS_KEY (HKDF with its own label, so it is no other key Portico uses), which every
 * replica shares: a token from one replica works on all.
 */
export class SessionTokenSigner {
  private readonly key: KeyObject;

  public constructor(secretsKey: Buffer) {
    this.key = createSecretKey(
      Buffer.from(hkdfSync('sha256', secretsKey, 'portico/session-token/v1', 'hs256 key', 32)),
    );
  }

  /** A token valid until `expiresAt` (ms since the epoch). */
  public sign(subject: SessionTokenSubject, expiresAt: number): Promise<string> {
    return new SignJWT({ name: subject.name, roles: [...subject.roles], sid: subject.sid })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: SESSION_TOKEN_KID })
      .setSubject(subject.id)
      .setIssuer(SESSION_TOKEN_ISSUER)
      .setAudience(SESSION_TOKEN_AUDIENCE)
      .setIssuedAt()
      .setJti(randomBytes(9).toString('base64url'))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .sign(this.key);
  }

  /**
   * The claims of a token this signer issued; rejects (jose's errors) for any other, expired
   * (no clock tolerance: Portico's own clock issued it) or malformed one.
   */
  public async verify(token: string): Promise<SessionTokenClaims> {
    const { payload } = await jwtVerify(token, this.key, {
      algorithms: ['HS256'],
      issuer: SESSION_TOKEN_ISSUER,
      audience: SESSION_TOKEN_AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat', 'sid'],
    });
    return claimsOf(payload);
  }
}

function claimsOf(payload: JWTPayload): SessionTokenClaims {
  const roles = Array.isArray(payload.roles)
    ? payload.roles.filter((r): r is string => typeof r === 'string')
    : [];
  return {
    id: String(payload.sub),
    name:
      typeof payload.name === 'string' && payload.name !== '' ? payload.name : String(payload.sub),
    roles,
    sid: String(payload.sid),
    iat: Number(payload.iat),
    exp: Number(payload.exp),
  };
}
