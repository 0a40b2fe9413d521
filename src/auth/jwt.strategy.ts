import type { IncomingMessage } from 'node:http';

import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { JwtPayload } from 'jsonwebtoken';
import { Strategy } from 'passport-jwt';

import { extractCredential } from './credential-extractor';
import type { Principal } from './principal';
import { TokenVerifier } from './token-verifier.service';

/** passport-jwt over the same credential sources, key and options as TokenVerifier. */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  public constructor(private readonly verifier: TokenVerifier) {
    super({
      jwtFromRequest: (req: IncomingMessage) => extractCredential(req)?.token ?? null,
      secretOrKeyProvider: (
        _req: unknown,
        _token: unknown,
        done: (err: unknown, secret?: string) => void,
      ) => {
        try {
          done(null, verifier.secret);
        } catch (err) {
          done(err);
        }
      },
      algorithms: verifier.options.algorithms,
      jsonWebTokenOptions: verifier.options,
      ignoreExpiration: false,
    });
  }

  public validate(payload: JwtPayload): Principal {
    return this.verifier.toPrincipal(payload);
  }
}
