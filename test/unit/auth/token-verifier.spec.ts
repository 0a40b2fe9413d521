import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';

import { ConsoleLogger, Logger } from '@nestjs/common';

import { mintToken, signCompact } from '../../../scripts/lib/token-minter';
import { AuthException, AuthExceptionCode } from '../../../src/auth/auth.exception';
import { TokenVerifier } from '../../../src/auth/token-verifier.service';
import { PorticoConfig } from '../../../src/config/portico-config';
import { hs256, SECRET } from './auth-context';

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
    const a = hs256({ sub: 'u1', preferred_username: 'pu', exp: now() + 60 });
    const b = hs256({ sub: 'u2', exp: now() + 60 });
    expect((await v.verify(a)).name).toBe('pu');
    expect((await v.verify(b)).name).toBe('u2');
  });

  it('reads roles from a configured claim, as a list or a string', async () => {
    const v = verifier({ JWT_ROLES_CLAIM: 'groups' });
    expect(
      (await v.verify(hs256({ sub: 'a', groups: 'admin ops,dev', exp: now() + 60 }))).roles,
    ).toEqual(['admin', 'ops', 'dev']);
    expect((await v.verify(hs256({ sub: 'a', groups: ['x', 3], exp: now() + 60 }))).roles).toEqual([
      'x',
    ]);
  });

  it.each([
    ['expired', () => hs256({ sub: 'a', exp: now() - 60 }), AuthExceptionCode.EXPIRED_TOKEN],
    ['not yet valid', () => hs256({ sub: 'a', nbf: now() + 120 }), AuthExceptionCode.INVALID_TOKEN],
    [
      'signed with another key',
      () => hs256({ sub: 'a' }, 'x'.repeat(40)),
      AuthExceptionCode.INVALID_TOKEN,
    ],
    ['without a subject', () => hs256({ roles: [] }), AuthExceptionCode.INVALID_TOKEN],
    ['garbage', () => 'not.a.jwt', AuthExceptionCode.INVALID_TOKEN],
  ])('rejects a token %s', async (_what, make, code) => {
    await expect(verifier().verify(make())).rejects.toMatchObject({ code });
  });

  it('refuses a token without exp unless JWT_ALLOW_NO_EXP is set', async () => {
    const token = hs256({ sub: 'a' });
    await expect(verifier().verify(token)).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no expiry'),
    );
    await expect(verifier({ JWT_ALLOW_NO_EXP: true }).verify(token)).resolves.toMatchObject({
      id: 'a',
      exp: undefined,
    });
  });

  it('tolerates 30 s of clock skew', async () => {
    await expect(verifier().verify(hs256({ sub: 'a', exp: now() - 10 }))).resolves.toBeDefined();
    await expect(
      verifier().verify(hs256({ sub: 'a', nbf: now() + 10, exp: now() + 60 })),
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
    // The async form: a sync key job lives until GC, and --detectOpenHandles may report it.
    const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
    const rs = signCompact({ alg: 'RS256', typ: 'JWT' }, { sub: 'a', exp: now() + 60 }, privateKey);
    const hs512 = signCompact({ alg: 'HS512', typ: 'JWT' }, { sub: 'a', exp: now() + 60 }, SECRET);
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
    await expect(verifier().verify(hs256({ sub: 'a', exp: now() - 60 }))).rejects.toEqual(
      new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired'),
    );
    await expect(verifier().verify(hs256({ sub: 'a', nbf: now() + 120 }))).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token not yet valid'),
    );
  });

  it('accepts a token whose audience list names the configured audience', async () => {
    const v = verifier({ JWT_AUDIENCE: 'portico' });
    const exp = now() + 60;
    await expect(
      v.verify(hs256({ sub: 'a', aud: ['other', 'portico'], exp })),
    ).resolves.toMatchObject({ id: 'a' });
    await expect(v.verify(hs256({ sub: 'a', aud: ['other'], exp }))).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token'),
    );
  });

  it('refuses exp and nbf claims that are not numbers', async () => {
    const invalid = new AuthException(AuthExceptionCode.INVALID_TOKEN, 'invalid token');
    await expect(verifier().verify(hs256({ sub: 'a', exp: 'never' }))).rejects.toEqual(invalid);
    await expect(
      verifier().verify(hs256({ sub: 'a', nbf: 'now', exp: now() + 60 })),
    ).rejects.toEqual(invalid);
  });

  it('counts a token as expired only once exp plus 30 s has passed', async () => {
    await expect(verifier().verify(hs256({ sub: 'a', exp: now() - 25 }))).resolves.toBeDefined();
    await expect(verifier().verify(hs256({ sub: 'a', exp: now() - 35 }))).rejects.toEqual(
      new AuthException(AuthExceptionCode.EXPIRED_TOKEN, 'token expired'),
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
    await expect(verifier().verify(hs256({ sub: '' }))).rejects.toEqual(
      new AuthException(AuthExceptionCode.INVALID_TOKEN, 'token has no subject'),
    );
    await expect(
      verifier().verify(signCompact({ alg: 'HS256', typ: 'JWT' }, 'just a string', SECRET)),
    ).rejects.toMatchObject({
      code: AuthExceptionCode.INVALID_TOKEN,
    });
  });

  it('keeps iat, and de-duplicates and trims roles', async () => {
    const iat = now() - 100;
    const exp = now() + 60;
    const principal = await verifier().verify(
      hs256({ sub: 'a', iat, exp, roles: [' admin', 'admin', '', 'dev '] }),
    );
    expect(principal).toEqual({ id: 'a', name: 'a', roles: ['admin', 'dev'], iat, exp });
    const none = await verifier().verify(hs256({ sub: 'a', exp, roles: { admin: true } }));
    expect(none.roles).toEqual([]);
  });

  it('refuses to be built without JWT_SECRET or JWT_JWKS_URL', () => {
    expect(() => new TokenVerifier(new PorticoConfig())).toThrow(
      'JWT_SECRET or JWT_JWKS_URL must be set to verify user tokens',
    );
  });

  it('pins the algorithm, issuer, audience and clock tolerance it verifies with', () => {
    expect(verifier({ JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' }).options).toEqual({
      algorithms: ['HS256'],
      clockTolerance: 30,
      issuer: 'i',
      audience: 'a',
    });
  });

  it('never puts the token in its error message', async () => {
    const tokens = [
      hs256({ sub: 'a', exp: now() - 60 }),
      hs256({ sub: 'a' }, 'y'.repeat(40)),
      hs256({ roles: [] }),
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
    const token = hs256({ sub: 'alice', exp: now() + 10 });
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
    const token = hs256({ sub: 'alice', exp: now() + 3600 });
    await v.verify(token);
    jest.setSystemTime(Date.now() + 60_000);
    await v.verify(token);
    expect(keyFor).toHaveBeenCalledTimes(2);
  });

  it('never caches a rejected token', async () => {
    const v = verifier();
    const keyFor = jest.spyOn(v, 'keyFor');
    const forged = hs256({ sub: 'alice' }, 'y'.repeat(40));
    await expect(v.verify(forged)).rejects.toBeInstanceOf(AuthException);
    await expect(v.verify(forged)).rejects.toBeInstanceOf(AuthException);
    expect(keyFor).toHaveBeenCalledTimes(2);
  });
});
