import type { IncomingMessage } from 'node:http';

import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { JwtPayload } from 'jsonwebtoken';
import { Strategy } from 'passport-jwt';

import { extractCredential } from './credential-extractor';
import type { Principal } from './principal';
import { TokenVerifier } from './token-verifier.service';
import type { VerificationKey } from './token-verifier.service';

export const JWT_STRATEGY = 'jwt';

/** The callback passport-jwt's typings declare: they predate KeyObject keys. */
type TypedKeyCallback = (err: unknown, key?: string | Buffer) => void;
/** What passport-jwt really does with the key: hand it untouched to jsonwebtoken.verify. */
type KeyCallback = (err: unknown, key?: VerificationKey) => void;

/**
 * passport-jwt over the same credential sources, keys, options and claim mapping as
 * TokenVerifier, so HTTP and WebSocket callers are judged alike.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  public constructor(private readonly verifier: TokenVerifier) {
    const { issuer, audience, algorithms } = verifier.options;
    super({
      jwtFromRequest: (req: IncomingMessage) => extractCredential(req)?.token ?? null,
      secretOrKeyProvider: (_req: IncomingMessage, token: string, typedDone: TypedKeyCallback) => {
        const done = typedDone as KeyCallback;
        verifier.keyFor(token).then(
          (key) => done(null, key),
          (err: unknown) => done(err),
        );
      },
      jsonWebTokenOptions: verifier.options,
      // passport-jwt overwrites these three in jsonWebTokenOptions with its own top-level
      // options, even when those are undefined; repeat them or issuer/audience go unchecked.
      issuer,
      audience,
      algorithms,
      ignoreExpiration: false,
    });
  }

  public validate(payload: JwtPayload): Principal {
    return this.verifier.toPrincipal(payload);
  }
}
