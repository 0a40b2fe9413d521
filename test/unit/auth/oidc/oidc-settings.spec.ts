import { randomBytes } from 'node:crypto';

import { ConsoleLogger, Logger } from '@nestjs/common';

import { mintToken } from '../../../../scripts/lib/token-minter';
import {
  claimAt,
  groupsIn,
  parseRoleMap,
  parseScopes,
  roleMapProblem,
  rolesFor,
  safeReturnTo,
} from '../../../../src/auth/oidc/oidc-settings';
import { MemorySessionStore, sessionExpired } from '../../../../src/auth/oidc/session-store';
import type { SignInSession } from '../../../../src/auth/oidc/session-store';
import { SessionTokenSigner } from '../../../../src/auth/oidc/session-token';
import { acceptedUntil, TokenVerifier } from '../../../../src/auth/token-verifier.service';
import { loadConfig } from '../../../../src/config/load-config';
import { PorticoConfig } from '../../../../src/config/portico-config';

describe('returnTo after sign-in stays on this server', () => {
  it.each([
    ['/', '/'],
    ['/console', '/console'],
    ['/?tab=web-terminal#x', '/?tab=web-terminal#x'],
    ['/a/../b', '/b'],
    // Escaped characters stay escaped: a harmless path, never a header.
    ['/%0d%0aSet-Cookie:x', '/%0d%0aSet-Cookie:x'],
  ])('%s is kept as %s', (value, kept) => {
    expect(safeReturnTo(value)).toBe(kept);
  });

  it.each(
    [
      'https://evil.example/',
      '//evil.example/',
      '/\\evil.example',
      '\\\\evil.example',
      'evil.example',
      'javascript:alert(1)',
      '/\t/evil.example',
      '/\n/evil.example',
      '',
      `/${'a'.repeat(3000)}`,
    ].map((value) => [
      value.length > 40 ? `${value.slice(0, 20)}… (${value.length} chars)` : value,
      value,
    ]),
  )('%j is refused', (_label, value) => {
    expect(safeReturnTo(value)).toBeUndefined();
  });
});

describe('groups and roles from claims', () => {
  it('reads a claim by name, by dotted path, and a claim whose name has dots', () => {
    const claims = {
      groups: ['a'],
      realm_access: { roles: ['admin', 'offline'] },
      'https://example.com/groups': 'x y',
    };
    expect(claimAt(claims, 'groups')).toEqual(['a']);
    expect(claimAt(claims, 'realm_access.roles')).toEqual(['admin', 'offline']);
    expect(claimAt(claims, 'https://example.com/groups')).toBe('x y');
    expect(claimAt(claims, 'realm_access.missing.deeper')).toBeUndefined();
  });

  it('takes groups as a list or a space/comma separated string, without repeats or blanks', () => {
    expect(groupsIn(['a', 'b', 'a', ' ', 3])).toEqual(['a', 'b']);
    expect(groupsIn('a, b c')).toEqual(['a', 'b', 'c']);
    expect(groupsIn(undefined)).toEqual([]);
    expect(groupsIn({ a: 1 })).toEqual([]);
  });

  it('maps groups to roles through OIDC_ROLE_MAP; unmapped groups give nothing', () => {
    const map = parseRoleMap('portico-admins=admin, developers=terminal,portico-admins=terminal');
    expect(rolesFor(['portico-admins', 'staff'], map)).toEqual(['admin', 'terminal']);
    expect(rolesFor(['staff'], map)).toEqual([]);
    expect(rolesFor(['developers', 'staff'], undefined)).toEqual(['developers', 'staff']);
  });

  it('refuses a role map it cannot read', () => {
    expect(roleMapProblem('a=b,c=d')).toBeUndefined();
    expect(roleMapProblem('a')).toMatch(/group=role/);
    expect(roleMapProblem('=admin')).toMatch(/group=role/);
    expect(roleMapProblem(' , ')).toMatch(/group=role/);
  });

  it('splits scopes on spaces and commas', () => {
    expect(parseScopes('openid profile,email  openid')).toEqual(['openid', 'profile', 'email']);
  });
});

describe('single sign-on configuration', () => {
  const base = {
    NODE_ENV: 'test',
    DATA_DIR: '/nonexistent',
    SECRETS_KEY: randomBytes(32).toString('base64'),
  };

  it('needs OIDC_CLIENT_ID with OIDC_ISSUER, openid in the scopes, and a callback redirect URL', () => {
    expect(() =>
      loadConfig({ ...base, JWT_SECRET: 'x'.repeat(32), OIDC_ISSUER: 'https://idp.example' }),
    ).toThrow(/OIDC_CLIENT_ID: must be set when OIDC_ISSUER is/);
    expect(() =>
      loadConfig({
        ...base,
        OIDC_ISSUER: 'https://idp.example',
        OIDC_CLIENT_ID: 'portico',
        OIDC_SCOPES: 'profile email',
        OIDC_REDIRECT_URL: 'https://portico.example/callback',
        OIDC_ROLE_MAP: 'admins',
      }),
    ).toThrow(
      /OIDC_SCOPES: must include openid[\s\S]*OIDC_ROLE_MAP[\s\S]*OIDC_REDIRECT_URL: must end with \/api\/auth\/callback/,
    );
  });

  it('makes JWT_SECRET optional in production: Portico verifies its own session tokens', () => {
    const config = loadConfig({
      ...base,
      NODE_ENV: 'production',
      OIDC_ISSUER: 'https://idp.example/realms/acme',
      OIDC_CLIENT_ID: 'portico',
    });
    expect(config.JWT_SECRET).toBeUndefined();
    expect(() => new TokenVerifier(config)).not.toThrow();
  });
});

describe('session tokens', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  const key = randomBytes(32);
  const config = (): PorticoConfig =>
    Object.assign(new PorticoConfig(), {
      JWT_SECRET: 's'.repeat(40),
      SECRETS_KEY: key.toString('base64'),
      OIDC_ISSUER: 'https://idp.example',
      OIDC_CLIENT_ID: 'portico',
    });
  const subject = { id: 'alice', name: 'Alice', roles: ['terminal'], sid: 'sid-1' };

  it('are accepted with their session id and closed at exp, with no clock tolerance', async () => {
    const verifier = new TokenVerifier(config());
    const exp = Date.now() + 60_000;
    const principal = await verifier.verify(await verifier.issueSessionToken(subject, exp));
    expect(principal).toMatchObject({
      id: 'alice',
      name: 'Alice',
      roles: ['terminal'],
      sid: 'sid-1',
    });
    expect(acceptedUntil(principal)).toBe(Math.floor(exp / 1000) * 1000);
  });

  it('are refused once expired, once their session signed out, or when signed with another key', async () => {
    const verifier = new TokenVerifier(config());
    const expired = await verifier.issueSessionToken(subject, Date.now() - 1000);
    await expect(verifier.verify(expired)).rejects.toThrow(/expired/);
    const live = await verifier.issueSessionToken(subject, Date.now() + 60_000);
    await verifier.verify(live);
    verifier.endSession('sid-1', Date.now() + 60_000);
    await expect(verifier.verify(live)).rejects.toThrow(/signed out/);
    const foreign = await new SessionTokenSigner(randomBytes(32)).sign(
      subject,
      Date.now() + 60_000,
    );
    await expect(verifier.verify(foreign)).rejects.toThrow(/invalid token/);
  });

  it('a JWT_SECRET token claiming the session key id is not taken for one', async () => {
    const verifier = new TokenVerifier(config());
    const forged = mintToken('s'.repeat(40), { sub: 'mallory', roles: ['admin'] });
    // A normal JWT_SECRET token still works…
    await expect(verifier.verify(forged)).resolves.toMatchObject({ id: 'mallory' });
    // …but without OIDC_ISSUER there are no session tokens at all.
    const plain = new TokenVerifier(Object.assign(config(), { OIDC_ISSUER: undefined }));
    const session = await verifier.issueSessionToken(subject, Date.now() + 60_000);
    await expect(plain.verify(session)).rejects.toThrow(/invalid token/);
  });
});

describe('MemorySessionStore', () => {
  const session = (over: Partial<SignInSession> = {}): SignInSession => ({
    sid: 's',
    subject: 'alice',
    name: 'Alice',
    roles: [],
    csrf: 'c',
    createdAt: 0,
    lastSeenAt: 0,
    expiresAt: 100_000,
    ...over,
  });

  it('ends a session idle too long or past its absolute end', () => {
    expect(sessionExpired(session(), 1_000, 5_000)).toBe(false);
    expect(sessionExpired(session(), 5_000, 5_000)).toBe(true);
    expect(sessionExpired(session({ lastSeenAt: 99_000 }), 100_000, 5_000)).toBe(true);
  });

  it('runs updates of one session one at a time, each seeing the last one’s result', async () => {
    const store = new MemorySessionStore();
    await store.create('k', session({ roles: [] }));
    const order: number[] = [];
    const add = (n: number) =>
      store.update('k', async (s) => {
        order.push(n);
        await new Promise((r) => setTimeout(r, 5));
        return { ...s, roles: [...s.roles, String(n)] };
      });
    await Promise.all([add(1), add(2), add(3)]);
    expect(order).toEqual([1, 2, 3]);
    expect((await store.get('k'))?.roles).toEqual(['1', '2', '3']);
    await expect(store.update('k', () => Promise.resolve(null))).resolves.toBeNull();
    expect(await store.get('k')).toBeUndefined();
    await expect(store.update('k', (s) => Promise.resolve(s))).resolves.toBeUndefined();
  });
});
