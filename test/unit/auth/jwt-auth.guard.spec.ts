import { generateKeyPairSync } from 'node:crypto';

import { ConsoleLogger, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import { mintToken, signCompact } from '../../../scripts/lib/token-minter';
import { BEARER_SUBPROTOCOL_PREFIX } from '../../../src/auth/credential-extractor';
import { JwtAuthGuard } from '../../../src/auth/jwt-auth.guard';
import { JwtStrategy } from '../../../src/auth/jwt.strategy';
import { ADMIN_ROLE } from '../../../src/auth/principal';
import { Public } from '../../../src/auth/public.decorator';
import { Roles } from '../../../src/auth/roles.decorator';
import { TokenVerifier } from '../../../src/auth/token-verifier.service';
import { PorticoConfig } from '../../../src/config/portico-config';
import { config, hs256, httpContext, refusal, request, SECRET } from './auth-context';

@Public()
class HealthRoutes {
  public live(): void {}
}

class ApiRoutes {
  @Public()
  public open(): void {}

  public list(): void {}

  @Roles(ADMIN_ROLE)
  public rescan(): void {}
}

/** The guard of an app with this configuration (its own TokenVerifier, as Nest would build). */
function guardFor(cfg: PorticoConfig = config()): JwtAuthGuard {
  return new JwtAuthGuard(new Reflector(), new TokenVerifier(cfg));
}

/** Registers an app's `jwt` strategy in passport's process-wide registry, as Nest would. */
function registerStrategyOf(cfg: PorticoConfig): void {
  new JwtStrategy(new TokenVerifier(cfg));
}

const now = (): number => Math.floor(Date.now() / 1000);
const unauthorized = (message: string): { status: number; body: unknown } => ({
  status: 401,
  body: { statusCode: 401, error: 'Unauthorized', message },
});

describe('JwtAuthGuard', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
    registerStrategyOf(config());
  });
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  describe('public routes', () => {
    it('lets anyone into a @Public() controller', async () => {
      const req = request('/healthz');
      await expect(guardFor().canActivate(httpContext(req, HealthRoutes, 'live'))).resolves.toBe(
        true,
      );
      expect(req.user).toBeUndefined();
    });

    it('lets anyone into a @Public() handler', async () => {
      const req = request('/api/open');
      await expect(guardFor().canActivate(httpContext(req, ApiRoutes, 'open'))).resolves.toBe(true);
      expect(req.user).toBeUndefined();
    });
  });

  describe('every other route', () => {
    it('answers 401 "missing credentials" without a token', async () => {
      const ctx = httpContext(request('/api/plugins'), ApiRoutes, 'list');
      expect(await refusal(() => guardFor().canActivate(ctx))).toEqual(
        unauthorized('missing credentials'),
      );
    });

    it('sets req.user to the principal of a valid bearer token', async () => {
      const token = mintToken(SECRET, { sub: 'alice', name: 'Alice', roles: ['user', 'dev'] });
      const req = request('/api/plugins', { authorization: `Bearer ${token}` });
      await expect(guardFor().canActivate(httpContext(req, ApiRoutes, 'list'))).resolves.toBe(true);
      expect(req.user).toEqual({
        id: 'alice',
        name: 'Alice',
        roles: ['user', 'dev'],
        iat: expect.any(Number) as number,
        exp: expect.any(Number) as number,
      });
    });

    it.each([
      ['cookie', (t: string) => request('/api/plugins', { cookie: `a=1; portico_token=${t}` })],
      ['query', (t: string) => request(`/api/plugins/x/rpc/y?token=${t}&a=1`)],
      [
        'subprotocol',
        (t: string) =>
          request('/api/plugins', {
            'sec-websocket-protocol':
              BEARER_SUBPROTOCOL_PREFIX + Buffer.from(t).toString('base64url'),
          }),
      ],
    ])('accepts a token from the %s', async (_source, make) => {
      const req = make(mintToken(SECRET, { sub: 'bob' }));
      await expect(guardFor().canActivate(httpContext(req, ApiRoutes, 'list'))).resolves.toBe(true);
      expect(req.user?.id).toBe('bob');
    });

    it.each([
      ['expired', () => mintToken(SECRET, { sub: 'a', expiresInSeconds: -120 }), 'token expired'],
      ['not yet valid', () => hs256({ sub: 'a', nbf: now() + 300 }), 'token not yet valid'],
      ['signed with another key', () => mintToken('z'.repeat(40), { sub: 'a' }), 'invalid token'],
      ['malformed', () => 'not-a-jwt', 'invalid token'],
      [
        'alg none',
        () =>
          [
            { alg: 'none', typ: 'JWT' },
            { sub: 'root', roles: ['admin'] },
          ]
            .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
            .join('.') + '.',
        'invalid token',
      ],
      [
        'RS256',
        () =>
          signCompact(
            { alg: 'RS256', typ: 'JWT' },
            { sub: 'a' },
            generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
          ),
        'invalid token',
      ],
      ['without sub', () => hs256({ roles: ['admin'] }), 'token has no subject'],
    ])('answers 401 for a token %s, without echoing it', async (_what, make, message) => {
      const token = make();
      const req = request('/api/plugins', { authorization: `Bearer ${token}` });
      const result = await refusal(() =>
        guardFor().canActivate(httpContext(req, ApiRoutes, 'list')),
      );
      expect(result).toEqual(unauthorized(message));
      expect(req.user).toBeUndefined();
    });

    it('does not fall back to a cookie when the header token is bad', async () => {
      const good = mintToken(SECRET, { sub: 'a' });
      const req = request('/api/plugins', {
        authorization: 'Bearer nope',
        cookie: `portico_token=${good}`,
      });
      const result = await refusal(() =>
        guardFor().canActivate(httpContext(req, ApiRoutes, 'list')),
      );
      expect(result).toEqual(unauthorized('invalid token'));
    });
  });

  describe('issuer and audience', () => {
    const guard = (): JwtAuthGuard =>
      guardFor(config({ JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'portico' }));
    const attempt = (token: string): Promise<boolean> =>
      guard().canActivate(
        httpContext(
          request('/api/plugins', { authorization: `Bearer ${token}` }),
          ApiRoutes,
          'list',
        ),
      );

    it('accepts a token with both', async () => {
      const token = mintToken(SECRET, {
        sub: 'a',
        issuer: 'https://id.example',
        audience: 'portico',
      });
      await expect(attempt(token)).resolves.toBe(true);
    });

    it.each([
      ['no issuer or audience', {}],
      ['another issuer', { issuer: 'https://evil.example', audience: 'portico' }],
      ['another audience', { issuer: 'https://id.example', audience: 'elsewhere' }],
    ])('refuses a token with %s', async (_what, claims) => {
      const token = mintToken(SECRET, { sub: 'a', ...claims });
      expect(await refusal(() => attempt(token))).toEqual(unauthorized('invalid token'));
    });
  });

  describe('several apps in one process', () => {
    const A = 'a'.repeat(40);
    const B = 'b'.repeat(40);
    const attempt = (guard: JwtAuthGuard, token: string): Promise<boolean> =>
      guard.canActivate(
        httpContext(
          request('/api/plugins', { authorization: `Bearer ${token}` }),
          ApiRoutes,
          'list',
        ),
      );
    const tokenFor = (secret: string): string => mintToken(secret, { sub: 'a' });

    it('judges each request by its own app verifier, whichever strategy passport holds', async () => {
      const first = guardFor(config({ JWT_SECRET: A }));
      registerStrategyOf(config({ JWT_SECRET: A }));
      const second = guardFor(config({ JWT_SECRET: B }));
      // The second app's strategy is now the one registered under `jwt`.
      registerStrategyOf(config({ JWT_SECRET: B }));
      await expect(attempt(first, tokenFor(A))).resolves.toBe(true);
      await expect(attempt(second, tokenFor(B))).resolves.toBe(true);
      expect(await refusal(() => attempt(first, tokenFor(B)))).toEqual(
        unauthorized('invalid token'),
      );
      expect(await refusal(() => attempt(second, tokenFor(A)))).toEqual(
        unauthorized('invalid token'),
      );
    });
  });

  describe('a verifier failure that is not a refusal', () => {
    it('is rethrown as it is (a 500 from the exception filter), not turned into a 401', async () => {
      const verifier = new TokenVerifier(config());
      const bug = new Error('key store exploded');
      jest.spyOn(verifier, 'verify').mockRejectedValue(bug);
      const req = request('/api/plugins', {
        authorization: `Bearer ${mintToken(SECRET, { sub: 'a' })}`,
      });
      await expect(
        new JwtAuthGuard(new Reflector(), verifier).canActivate(
          httpContext(req, ApiRoutes, 'list'),
        ),
      ).rejects.toBe(bug);
      expect(req.user).toBeUndefined();
    });
  });
});
