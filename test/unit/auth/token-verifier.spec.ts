import { generateKeyPairSync } from 'node:crypto';

import { ConsoleLogger, Logger } from '@nestjs/common';
import { sign } from 'jsonwebtoken';

import { AuthException, AuthExceptionCode } from '../../../src/auth/auth.exception';
import { mintToken } from '../../../src/auth/token-minter';
import { TokenVerifier } from '../../../src/auth/token-verifier.service';
import { PorticoConfig } from '../../../src/config/portico-config';

const SECRET = 'unit-test-secret-unit-test-secret-0123456789';

function verifier(overrides: Partial<PorticoConfig> = {}): TokenVerifier {
  return new TokenVerifier(Object.assign(new PorticoConfig(), { JWT_SECRET: SECRET }, overrides));
}

const now = (): number => Math.floor(Date.now() / 1000);

describe('TokenVerifier', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  it('accepts a valid token and maps it to a principal', async () => {
    const token = mintToken(SECRET, { sub: 'alice', name: 'Alice', roles: ['admin', 'dev'] });
    await expect(verifier().verify(token)).resolves.toMatchObject({
      id: 'alice',
      name: 'Alice',
      roles: ['admin', 'dev'],
    });
  });

  it('falls back to preferred_username, then sub, for the name', async () => {
    const v = verifier();
    const a = sign({ sub: 'u1', preferred_username: 'pu', exp: now() + 60 }, SECRET);
    const b = sign({ sub: 'u2', exp: now() + 60 }, SECRET);
    expect((await v.verify(a)).name).toBe('pu');
    expect((await v.verify(b)).name).toBe('u2');
  });

  it('reads roles from a configured claim, as a list or a string', async () => {
    const v = verifier({ JWT_ROLES_CLAIM: 'groups' });
    expect(
      (await v.verify(sign({ sub: 'a', groups: 'admin ops,dev', exp: now() + 60 }, SECRET))).roles,
    ).toEqual(['admin', 'ops', 'dev']);
    expect(
      (await v.verify(sign({ sub: 'a', groups: ['x', 3], exp: now() + 60 }, SECRET))).roles,
    ).toEqual(['x']);
  });

  it.each([
    ['expired', () => sign({ sub: 'a', exp: now() - 60 }, SECRET), AuthExceptionCode.EXPIRED_TOKEN],
    [
      'not yet valid',
      () => sign({ sub: 'a', nbf: now() + 120 }, SECRET),
      AuthExceptionCode.INVALID_TOKEN,
    ],
    [
      'signed with another key',
      () => sign({ sub: 'a' }, 'x'.repeat(40)),
      AuthExceptionCode.INVALID_TOKEN,
    ],
    ['without a subject', () => sign({ roles: [] }, SECRET), AuthExceptionCode.INVALID_TOKEN],
    ['garbage', () => 'not.a.jwt', AuthExceptionCode.INVALID_TOKEN],
  ])('rejects a token %s', async (_what, make, code) => {
    await expect(verifier().verify(make())).rejects.toMatchObject({ code });
  });

  it('refuses a token without exp unless JWT_ALLOW_NO_EXP is set', async () => {
    const token = sign({ sub: 'a' }, SECRET);
    await expect(verifier().verify(token)).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no expiry'),
    );
    await expect(verifier({ JWT_ALLOW_NO_EXP: true }).verify(token)).resolves.toMatchObject({
      id: 'a',
      exp: undefined,
    });
  });

  it('tolerates 30 s of clock skew', async () => {
    await expect(
      verifier().verify(sign({ sub: 'a', exp: now() - 10 }, SECRET)),
    ).resolves.toBeDefined();
    await expect(
      verifier().verify(sign({ sub: 'a', nbf: now() + 10, exp: now() + 60 }, SECRET)),
    ).resolves.toBeDefined();
  });

  it('rejects alg none', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ sub: 'admin', roles: ['admin'] })).toString(
      'base64url',
    );
    await expect(verifier().verify(`${header}.${body}.`)).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
  });

  it('rejects an RS256 token and an HS512 token (algorithm pinned)', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rs = sign({ sub: 'a' }, privateKey, { algorithm: 'RS256' });
    const hs512 = sign({ sub: 'a' }, SECRET, { algorithm: 'HS512' });
    await expect(verifier().verify(rs)).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
    await expect(verifier().verify(hs512)).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
  });

  it('checks issuer and audience when configured', async () => {
    const v = verifier({ JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'portico' });
    const good = mintToken(SECRET, { sub: 'a', issuer: 'https://id.example', audience: 'portico' });
    const badIss = mintToken(SECRET, { sub: 'a', issuer: 'https://evil', audience: 'portico' });
    const badAud = mintToken(SECRET, { sub: 'a', issuer: 'https://id.example', audience: 'x' });
    await expect(v.verify(good)).resolves.toBeDefined();
    await expect(v.verify(badIss)).rejects.toMatchObject({ code: AuthExceptionCode.INVALID_TOKEN });
    await expect(v.verify(badAud)).rejects.toMatchObject({ code: AuthExceptionCode.INVALID_TOKEN });
  });

  it('answers expired and not-yet-valid tokens with their own messages', async () => {
    await expect(verifier().verify(sign({ sub: 'a', exp: now() - 60 }, SECRET))).rejects.toEqual(
      new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired'),
    );
    await expect(verifier().verify(sign({ sub: 'a', nbf: now() + 120 }, SECRET))).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid'),
    );
  });

  it('accepts any issuer and audience when none is configured', async () => {
    const token = mintToken(SECRET, { sub: 'a', issuer: 'https://other', audience: 'other' });
    await expect(verifier().verify(token)).resolves.toMatchObject({ id: 'a' });
  });

  it('rejects a token without the configured issuer or audience', async () => {
    const token = mintToken(SECRET, { sub: 'a' });
    await expect(verifier({ JWT_ISSUER: 'https://id.example' }).verify(token)).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token'),
    );
    await expect(verifier({ JWT_AUDIENCE: 'portico' }).verify(token)).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
  });

  it('rejects an empty subject and a non-object payload', async () => {
    await expect(verifier().verify(sign({ sub: '' }, SECRET))).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no subject'),
    );
    await expect(verifier().verify(sign('just a string', SECRET))).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
  });

  it('keeps iat, and de-duplicates and trims roles', async () => {
    const iat = now() - 100;
    const exp = now() + 60;
    const principal = await verifier().verify(
      sign({ sub: 'a', iat, exp, roles: [' admin', 'admin', '', 'dev '] }, SECRET),
    );
    expect(principal).toEqual({ id: 'a', name: 'a', roles: ['admin', 'dev'], iat, exp });
    const none = await verifier().verify(sign({ sub: 'a', exp, roles: { admin: true } }, SECRET));
    expect(none.roles).toEqual([]);
  });

  it('refuses to be built without JWT_SECRET or JWT_JWKS_URL', () => {
    expect(() => new TokenVerifier(new PorticoConfig())).toThrow(
      'JWT_SECRET or JWT_JWKS_URL must be set to verify user tokens',
    );
  });

  it('pins the algorithm and clock tolerance in the options it shares with JwtStrategy', () => {
    expect(verifier({ JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' }).options).toEqual({
      algorithms: ['HS256'],
      clockTolerance: 30,
      issuer: 'i',
      audience: 'a',
    });
  });

  it('never puts the token in its error message', async () => {
    const tokens = [
      sign({ sub: 'a', exp: now() - 60 }, SECRET),
      sign({ sub: 'a' }, 'y'.repeat(40)),
      sign({ roles: [] }, SECRET),
      'garbage-token-value',
    ];
    for (const token of tokens) {
      const err = await verifier()
        .verify(token)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(AuthException);
      for (const part of token.split('.')) expect((err as Error).message).not.toContain(part);
    }
  });
});

describe('TokenVerifier cache of verified tokens', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));
  afterEach(() => jest.useRealTimers());

  const fakeClock = (): void => {
    jest.useFakeTimers({ now: new Date('2026-06-01T12:00:00Z'), doNotFake: ['nextTick'] });
  };

  it('checks a repeated token once, then again and refuses it once it has expired', async () => {
    fakeClock();
    const v = verifier();
    const keyFor = jest.spyOn(v, 'keyFor');
    const token = sign({ sub: 'alice', exp: now() + 10 }, SECRET);
    await v.verify(token);
    await v.verify(token);
    expect(keyFor).toHaveBeenCalledTimes(1);
    // exp + the 30 s tolerance has passed: the cache no longer answers, verification refuses.
    jest.setSystemTime(Date.now() + 41_000);
    await expect(v.verify(token)).rejects.toMatchObject({
      code: AuthExceptionCode.EXPIRED_TOKEN,
    });
    expect(keyFor).toHaveBeenCalledTimes(2);
  });

  it('verifies a token again after a minute, whatever its exp', async () => {
    fakeClock();
    const v = verifier();
    const keyFor = jest.spyOn(v, 'keyFor');
    const token = sign({ sub: 'alice', exp: now() + 3600 }, SECRET);
    await v.verify(token);
    jest.setSystemTime(Date.now() + 60_000);
    await v.verify(token);
    expect(keyFor).toHaveBeenCalledTimes(2);
  });

  it('never caches a rejected token', async () => {
    const v = verifier();
    const keyFor = jest.spyOn(v, 'keyFor');
    const forged = sign({ sub: 'alice' }, 'y'.repeat(40));
    await expect(v.verify(forged)).rejects.toBeInstanceOf(AuthException);
    await expect(v.verify(forged)).rejects.toBeInstanceOf(AuthException);
    expect(keyFor).toHaveBeenCalledTimes(2);
  });
});
