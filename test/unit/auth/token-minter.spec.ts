import { createSecretKey, generateKeyPairSync } from 'node:crypto';

import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';

import { mintToken, signCompact } from '../../../scripts/lib/token-minter';
import { SECRET } from './auth-context';

const secretKey = createSecretKey(Buffer.from(SECRET, 'utf8'));

/** The dev minter signs with node:crypto; jose (what src/auth verifies with) must agree. */
describe('token minter (scripts/lib)', () => {
  describe('mintToken', () => {
    it('signs an HS256 token jose verifies, with the claims asked for', async () => {
      const token = mintToken(SECRET, {
        sub: 'alice',
        name: 'Alice',
        roles: ['admin'],
        issuer: 'https://id.example',
        audience: 'portico',
        expiresInSeconds: 120,
      });
      const { payload, protectedHeader } = await jwtVerify(token, secretKey, {
        algorithms: ['HS256'],
        issuer: 'https://id.example',
        audience: 'portico',
      });
      expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
      expect(payload).toEqual({
        sub: 'alice',
        name: 'Alice',
        roles: ['admin'],
        iss: 'https://id.example',
        aud: 'portico',
        iat: expect.any(Number) as number,
        exp: (payload.iat ?? 0) + 120,
      });
    });

    it('defaults to an hour, no roles, and puts roles under rolesClaim when given', () => {
      const plain = decodeJwt(mintToken(SECRET, { sub: 'a' }));
      expect(plain).toMatchObject({ sub: 'a', roles: [] });
      expect((plain.exp ?? 0) - (plain.iat ?? 0)).toBe(3600);
      expect(plain).not.toHaveProperty('name');
      const groups = decodeJwt(mintToken(SECRET, { sub: 'a', roles: ['x'], rolesClaim: 'groups' }));
      expect(groups).toMatchObject({ groups: ['x'] });
      expect(groups).not.toHaveProperty('roles');
    });

    it('makes an already expired token from a negative lifetime', async () => {
      const token = mintToken(SECRET, { sub: 'a', expiresInSeconds: -120 });
      await expect(jwtVerify(token, secretKey, { algorithms: ['HS256'] })).rejects.toMatchObject({
        code: 'ERR_JWT_EXPIRED',
      });
    });
  });

  describe('signCompact', () => {
    it.each([
      ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
      ['RS512', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
      ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ])('signs %s so that jose verifies it with the public key', async (alg, pair) => {
      const { privateKey, publicKey } = pair();
      const token = signCompact({ alg, kid: 'k1' }, { sub: 'a' }, privateKey);
      const { payload } = await jwtVerify(token, publicKey, { algorithms: [alg] });
      expect(payload).toEqual({ sub: 'a' });
    });

    it('hashes HMAC with the hash its alg names', async () => {
      const token = signCompact({ alg: 'HS512' }, { sub: 'a' }, SECRET);
      await expect(jwtVerify(token, secretKey, { algorithms: ['HS512'] })).resolves.toBeDefined();
    });

    it('leaves the signature empty without a key, and takes a string payload as it is', () => {
      const token = signCompact({ alg: 'none' }, 'not json', undefined);
      const [, payload, signature] = token.split('.');
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'none' });
      expect(Buffer.from(payload ?? '', 'base64url').toString()).toBe('not json');
      expect(signature).toBe('');
    });
  });
});
