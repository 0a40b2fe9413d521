import { ConsoleLogger, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { decodeProtectedHeader } from 'jose';

import { mintToken } from '../../../scripts/lib/token-minter';
import { AuthException, AuthExceptionCode } from '../../../src/auth/auth.exception';
import { JwtAuthGuard } from '../../../src/auth/jwt-auth.guard';
import { JwtStrategy } from '../../../src/auth/jwt.strategy';
import { JWKS_DEFAULTS } from '../../../src/auth/jwks-key-source';
import type { JwksOptions } from '../../../src/auth/jwks-key-source';
import { TokenVerifier } from '../../../src/auth/token-verifier.service';
import { PorticoConfig } from '../../../src/config/portico-config';
import {
  craftToken,
  generateSigningKey,
  JwksServer,
  randomKid,
  signWith,
} from '../../helpers/jwks-server';
import { config, httpContext, refusal, request, SECRET } from './auth-context';

const ISSUER = 'https://id.example';
const AUDIENCE = 'portico';
const CLAIMS = { sub: 'alice', name: 'Alice', roles: ['user'], iss: ISSUER, aud: AUDIENCE };
const COOLDOWN = JWKS_DEFAULTS.refetchCooldownMs;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const invalid = new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
const unavailable = new AuthException(
  AuthExceptionCode.KEYS_UNAVAILABLE,
  'signing keys unavailable',
);

class ApiRoutes {
  public list(): void {}
}

describe('TokenVerifier with JWT_JWKS_URL', () => {
  let jwks: JwksServer;
  /** What the key cache sees as the time; moved by hand to cross cooldowns and max age. */
  let time: number;
  let verifiers: TokenVerifier[];

  function verifierFor(
    overrides: Partial<PorticoConfig> = {},
    options: Partial<JwksOptions> = {},
  ): TokenVerifier {
    const cfg = Object.assign(
      new PorticoConfig(),
      { JWT_JWKS_URL: jwks.url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
      overrides,
    );
    const verifier = new TokenVerifier(cfg, { now: () => time, ...options });
    verifiers.push(verifier);
    return verifier;
  }

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  beforeEach(async () => {
    jwks = await JwksServer.start();
    time = 1_000_000;
    verifiers = [];
  });

  afterEach(async () => {
    for (const verifier of verifiers) verifier.onModuleDestroy();
    await jwks.close();
    jest.restoreAllMocks();
  });

  describe('valid tokens', () => {
    it('accepts RS256 and ES256 tokens with keys from a single fetch', async () => {
      const v = verifierFor();
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toMatchObject({
        id: 'alice',
        name: 'Alice',
        roles: ['user'],
      });
      await expect(v.verify(signWith(jwks.ec, { ...CLAIMS, sub: 'bob' }))).resolves.toMatchObject({
        id: 'bob',
      });
      await v.verify(signWith(jwks.rsa, CLAIMS));
      expect(jwks.requests).toBe(1);
    });

    it('accepts a token without kid when exactly one key of its type is published', async () => {
      await expect(
        verifierFor().verify(signWith(jwks.ec, CLAIMS, { kid: null })),
      ).resolves.toMatchObject({ id: 'alice' });
    });

    it('tolerates 30 s of clock skew on exp and nbf', async () => {
      const v = verifierFor();
      const lateExp = signWith(jwks.rsa, { ...CLAIMS, exp: nowSeconds() - 10 });
      const earlyNbf = signWith(jwks.ec, { ...CLAIMS, nbf: nowSeconds() + 10 });
      await expect(v.verify(lateExp)).resolves.toBeDefined();
      await expect(v.verify(earlyNbf)).resolves.toBeDefined();
    });

    it('pins RS256 and ES256, the issuer, the audience and 30 s of tolerance', () => {
      expect(verifierFor().options).toEqual({
        algorithms: ['RS256', 'ES256'],
        clockTolerance: 30,
        issuer: ISSUER,
        audience: AUDIENCE,
      });
    });

    it('fetches the keys at startup so the first caller does not wait', async () => {
      const v = verifierFor();
      v.onApplicationBootstrap();
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toBeDefined();
      expect(jwks.requests).toBe(1);
    });
  });

  describe('rejected tokens (401)', () => {
    it.each([
      [
        'expired',
        () => signWith(jwks.rsa, { ...CLAIMS, exp: nowSeconds() - 60 }),
        new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired'),
      ],
      [
        'not yet valid',
        () => signWith(jwks.ec, { ...CLAIMS, nbf: nowSeconds() + 120 }),
        new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid'),
      ],
      [
        'from another issuer',
        () => signWith(jwks.rsa, { ...CLAIMS, iss: 'https://evil' }),
        invalid,
      ],
      ['for another audience', () => signWith(jwks.ec, { ...CLAIMS, aud: 'elsewhere' }), invalid],
      [
        'without issuer and audience',
        () => signWith(jwks.rsa, { sub: 'alice', roles: ['admin'] }),
        invalid,
      ],
      [
        'signed by another key under a published kid',
        () => signWith(generateSigningKey('RS256', { kid: jwks.rsa.kid }), CLAIMS),
        invalid,
      ],
      [
        'signed with alg none',
        () => craftToken({ alg: 'none', typ: 'JWT', kid: jwks.rsa.kid }, CLAIMS),
        invalid,
      ],
      [
        'signed with RS512 by a published key',
        () => signWith(jwks.rsa, CLAIMS, { algorithm: 'RS512' }),
        invalid,
      ],
    ])('refuses a token %s', async (_what, make, error) => {
      await expect(verifierFor().verify(make())).rejects.toEqual(error);
    });

    it('refuses a token whose kid names a key published for another alg', async () => {
      // The signature is valid for that key material: only the published `alg` says no.
      const rs384Only = generateSigningKey('RS256', { jwk: { alg: 'RS384' } });
      jwks.publish(rs384Only);
      const v = verifierFor();
      await expect(v.verify(signWith(rs384Only, CLAIMS))).rejects.toEqual(invalid);
      const ecKid = signWith(jwks.rsa, CLAIMS, { kid: jwks.ec.kid });
      await expect(v.verify(ecKid)).rejects.toEqual(invalid);
    });

    it('refuses a JWKS RSA key smaller than 2048 bits', async () => {
      const weak = generateSigningKey('RS256', { modulusLength: 1024 });
      jwks.publish(weak);
      await expect(verifierFor().verify(signWith(weak, CLAIMS))).rejects.toEqual(invalid);
    });

    it('ignores keys the token brings along (jwk, jku headers)', async () => {
      const attacker = generateSigningKey('RS256');
      const token = craftToken(
        { alg: 'RS256', jwk: attacker.jwk, jku: 'http://127.0.0.1:1/jwks' },
        { ...CLAIMS, exp: nowSeconds() + 300 },
        attacker.privateKey,
      );
      const embeddedKid = craftToken(
        { alg: 'RS256', kid: attacker.kid, jwk: attacker.jwk },
        { ...CLAIMS, exp: nowSeconds() + 300 },
        attacker.privateKey,
      );
      const honest = craftToken(
        { alg: 'RS256', kid: jwks.rsa.kid },
        { ...CLAIMS, exp: nowSeconds() + 300 },
        jwks.rsa.privateKey,
      );
      await expect(verifierFor().verify(honest)).resolves.toBeDefined();
      await expect(verifierFor().verify(embeddedKid)).rejects.toEqual(invalid);
      await expect(verifierFor().verify(token)).rejects.toEqual(invalid);
    });

    it('never puts the token in its error message', async () => {
      const token = signWith(jwks.rsa, { ...CLAIMS, exp: nowSeconds() - 60 });
      const err = await verifierFor()
        .verify(token)
        .catch((e: unknown) => e);
      for (const part of token.split('.')) expect((err as Error).message).not.toContain(part);
    });
  });

  describe('algorithm confusion', () => {
    const confused = (pem: string | Buffer, kid?: string): string =>
      craftToken({ alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) }, CLAIMS, pem);
    const rsaPems = (): Array<string | Buffer> => [
      jwks.rsa.publicKey.export({ type: 'spki', format: 'pem' }),
      jwks.rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }),
      jwks.rsa.publicKey.export({ type: 'spki', format: 'der' }),
      JSON.stringify(jwks.rsa.jwk),
    ];

    it('refuses HS256 tokens HMAC-signed with the RSA public key (JWKS only)', async () => {
      const v = verifierFor();
      for (const pem of rsaPems()) {
        await expect(v.verify(confused(pem, jwks.rsa.kid))).rejects.toEqual(invalid);
        await expect(v.verify(confused(pem))).rejects.toEqual(invalid);
      }
    });

    it('refuses them when JWT_SECRET is set too', async () => {
      const v = verifierFor({ JWT_SECRET: SECRET });
      for (const pem of rsaPems()) {
        await expect(v.verify(confused(pem, jwks.rsa.kid))).rejects.toEqual(invalid);
        await expect(v.verify(confused(pem))).rejects.toEqual(invalid);
      }
    });

    it('hands an HS256 token only the HMAC secret, whatever kid it names', async () => {
      const header = decodeProtectedHeader(confused('x', jwks.rsa.kid));
      const both = await verifierFor({ JWT_SECRET: SECRET }).keyFor(header);
      expect(both.type).toBe('secret');
      expect(both.export().toString()).toBe(SECRET);
      // Refused synchronously (no key source for HS256): jose turns the throw into a rejection.
      expect(() => verifierFor().keyFor(header)).toThrow(invalid);
    });

    it('refuses an HS256 token when only JWT_JWKS_URL is set, and does not list HS256', async () => {
      const v = verifierFor();
      await expect(v.verify(mintToken(SECRET, { sub: 'a' }))).rejects.toEqual(invalid);
      expect(v.options.algorithms).not.toContain('HS256');
    });
  });

  describe('with JWT_SECRET as well', () => {
    it('accepts HS256 with the secret and RS256/ES256 from the key set', async () => {
      const v = verifierFor({ JWT_SECRET: SECRET });
      const hs = mintToken(SECRET, { sub: 'h', issuer: ISSUER, audience: AUDIENCE });
      await expect(v.verify(hs)).resolves.toMatchObject({ id: 'h' });
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toMatchObject({ id: 'alice' });
      await expect(v.verify(signWith(jwks.ec, CLAIMS))).resolves.toMatchObject({ id: 'alice' });
      expect(v.options.algorithms).toEqual(['HS256', 'RS256', 'ES256']);
    });

    it('verifies HS256 tokens without asking the JWKS endpoint', async () => {
      const v = verifierFor({ JWT_SECRET: SECRET });
      await v.verify(mintToken(SECRET, { sub: 'h', issuer: ISSUER, audience: AUDIENCE }));
      expect(jwks.requests).toBe(0);
    });
  });

  describe('unknown kid', () => {
    it('refetches once, then answers 401', async () => {
      const v = verifierFor();
      await v.verify(signWith(jwks.rsa, CLAIMS));
      time += COOLDOWN + 1;
      const stranger = signWith(generateSigningKey('RS256'), CLAIMS);
      await expect(v.verify(stranger)).rejects.toEqual(invalid);
      expect(jwks.requests).toBe(2);
      await expect(v.verify(stranger)).rejects.toEqual(invalid);
      expect(jwks.requests).toBe(2);
    });

    it('picks up a rotated key after the refetch and keeps using the cache', async () => {
      const v = verifierFor();
      await v.verify(signWith(jwks.ec, CLAIMS));
      const rotated = jwks.rotate('ES256');
      time += COOLDOWN + 1;
      await expect(v.verify(signWith(rotated, CLAIMS))).resolves.toMatchObject({ id: 'alice' });
      await expect(v.verify(signWith(rotated, CLAIMS))).resolves.toBeDefined();
      expect(jwks.requests).toBe(2);
    });

    it('refuses a key rotated in during the cooldown until the cooldown has passed', async () => {
      const v = verifierFor();
      await v.verify(signWith(jwks.rsa, CLAIMS));
      const rotated = jwks.rotate('RS256');
      time += COOLDOWN - 1;
      await expect(v.verify(signWith(rotated, CLAIMS))).rejects.toEqual(invalid);
      expect(jwks.requests).toBe(1);
      time += 2;
      await expect(v.verify(signWith(rotated, CLAIMS))).resolves.toBeDefined();
      expect(jwks.requests).toBe(2);
    });

    it('stops accepting a key removed from the set once the cache has expired', async () => {
      const v = verifierFor();
      const old = jwks.rsa;
      await v.verify(signWith(old, CLAIMS));
      jwks.rotate('RS256');
      time += JWKS_DEFAULTS.maxAgeMs;
      await expect(v.verify(signWith(old, CLAIMS))).rejects.toEqual(invalid);
      expect(jwks.requests).toBe(2);
    });

    it('fetches at most a couple of times for 50 tokens with random kids', async () => {
      const v = verifierFor();
      const randomKidToken = (): string => signWith(jwks.rsa, CLAIMS, { kid: randomKid() });
      const all = (n: number): Promise<unknown[]> =>
        Promise.all(Array.from({ length: n }, () => v.verify(randomKidToken()).catch((e) => e)));

      const concurrent = await all(50);
      expect(concurrent).toEqual(Array(50).fill(invalid));
      expect(jwks.requests).toBe(1);

      time += COOLDOWN + 1;
      await all(50);
      for (let i = 0; i < 50; i++) {
        await expect(v.verify(randomKidToken())).rejects.toEqual(invalid);
      }
      expect(jwks.requests).toBeLessThanOrEqual(2);
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toBeDefined();
    });
  });

  describe('JWKS endpoint down', () => {
    // Behaviour, not speed: each case would outlast Jest's 5 s test timeout (and fail) if the
    // verifier waited for the fetch timeout it must not wait for; the logged reason says which
    // path was taken.
    const failureReason = (warn: jest.SpyInstance): unknown =>
      (
        warn.mock.calls.find(
          (c) => (c[0] as { event?: string }).event === 'jwks_fetch_failed',
        )?.[0] as { reason?: unknown } | undefined
      )?.reason;

    it('answers 401 "signing keys unavailable" at once when nothing listens', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn');
      const v = verifierFor({}, { fetchTimeoutMs: 10 * 60_000 });
      await jwks.close();
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
      expect(failureReason(warn)).toEqual(expect.stringContaining('ECONNREFUSED'));
    });

    it('answers 401 at the fetch timeout when the endpoint never answers', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn');
      jwks.mode = 'hang';
      const v = verifierFor({}, { fetchTimeoutMs: 300 });
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
      expect(failureReason(warn)).toBe('no complete answer within 300 ms');
    });

    it('answers 401 for an error status and for a body that is not a key set', async () => {
      jwks.mode = 'error';
      await expect(verifierFor().verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
      jwks.mode = 'keys';
      const notASet = verifierFor({}, { fetch: () => Promise.resolve({ keys: 'none' }) });
      await expect(notASet.verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
      const tooBig = verifierFor({}, { maxBytes: 100 });
      await expect(tooBig.verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
    });

    it('does not ask a failing endpoint again for every token', async () => {
      jwks.mode = 'error';
      const v = verifierFor();
      for (let i = 0; i < 20; i++) {
        await expect(v.verify(signWith(jwks.rsa, CLAIMS))).rejects.toEqual(unavailable);
      }
      expect(jwks.requests).toBe(1);
      time += JWKS_DEFAULTS.retryAfterFailureMs;
      jwks.mode = 'keys';
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toBeDefined();
      expect(jwks.requests).toBe(2);
    });

    it('logs a failure burst once, without tokens, and then the recovery', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn');
      const log = jest.spyOn(Logger.prototype, 'log');
      jwks.mode = 'error';
      const v = verifierFor();
      const tokens: string[] = [];
      for (let i = 0; i < 5; i++) {
        tokens.push(signWith(jwks.rsa, CLAIMS));
        await v.verify(tokens[i]).catch(() => undefined);
        time += JWKS_DEFAULTS.retryAfterFailureMs;
      }
      expect(jwks.requests).toBe(5);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ event: 'jwks_fetch_failed', url: jwks.url }),
      );
      jwks.mode = 'keys';
      await v.verify(signWith(jwks.rsa, CLAIMS));
      expect(log).toHaveBeenCalledWith(
        expect.objectContaining({ event: 'jwks_fetch_recovered', failures: 5 }),
      );
      const logged = JSON.stringify([...warn.mock.calls, ...log.mock.calls]);
      for (const token of tokens) expect(logged).not.toContain(token.split('.')[2]);
    });

    it('keeps using cached keys when a refresh fails', async () => {
      const v = verifierFor();
      await v.verify(signWith(jwks.rsa, CLAIMS));
      jwks.mode = 'error';
      time += JWKS_DEFAULTS.maxAgeMs;
      await expect(v.verify(signWith(jwks.rsa, CLAIMS))).resolves.toBeDefined();
      await expect(v.verify(signWith(jwks.ec, CLAIMS))).resolves.toBeDefined();
      expect(jwks.requests).toBe(2);
    });

    it('gives up a fetch in flight on shutdown', async () => {
      jwks.mode = 'hang';
      // Without the abort this would wait out the 10-minute fetch timeout, failing the test.
      const v = verifierFor({}, { fetchTimeoutMs: 10 * 60_000 });
      const pending = v.verify(signWith(jwks.rsa, CLAIMS));
      await new Promise((resolve) => setTimeout(resolve, 50));
      v.onModuleDestroy();
      await expect(pending).rejects.toEqual(unavailable);
    });
  });

  describe('HTTP path (JwtAuthGuard and the jwt strategy)', () => {
    // The strategy registered under `jwt` knows only an HMAC secret: the guard's verifier must count.
    beforeAll(() => {
      new JwtStrategy(new TokenVerifier(config()));
    });
    const attempt = (verifier: TokenVerifier, token: string): Promise<boolean> =>
      new JwtAuthGuard(new Reflector(), verifier).canActivate(
        httpContext(
          request('/api/plugins', { authorization: `Bearer ${token}` }),
          ApiRoutes,
          'list',
        ),
      );

    it('accepts RS256 and ES256 tokens from the key set', async () => {
      const v = verifierFor();
      await expect(attempt(v, signWith(jwks.rsa, CLAIMS))).resolves.toBe(true);
      await expect(attempt(v, signWith(jwks.ec, CLAIMS))).resolves.toBe(true);
    });

    it('answers 401 for confusion, alg none, unknown kid and a down endpoint', async () => {
      const v = verifierFor({ JWT_SECRET: SECRET });
      const pem = jwks.rsa.publicKey.export({ type: 'spki', format: 'pem' });
      const bad = [
        craftToken({ alg: 'HS256', kid: jwks.rsa.kid }, CLAIMS, pem),
        craftToken({ alg: 'none', kid: jwks.rsa.kid }, CLAIMS),
        signWith(jwks.rsa, CLAIMS, { kid: randomKid() }),
      ];
      for (const token of bad) {
        expect(await refusal(() => attempt(v, token))).toEqual({
          status: 401,
          body: { statusCode: 401, error: 'Unauthorized', message: 'invalid token' },
        });
      }
      const down = verifierFor({ JWT_JWKS_URL: 'http://127.0.0.1:1/jwks' });
      expect(await refusal(() => attempt(down, signWith(jwks.ec, CLAIMS)))).toEqual({
        status: 401,
        body: { statusCode: 401, error: 'Unauthorized', message: 'signing keys unavailable' },
      });
    });
  });
});
