import type { IncomingHttpHeaders } from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';

import { PorticoConfig } from '../../src/config/portico-config';
import { IDENTITY_CONTEXT, identityMessage } from '../../src/plugins/secrets/plugin-identity';
import {
  IDENTITY_TTL_SECONDS,
  PluginIdentityService,
} from '../../src/plugins/secrets/plugin-identity.service';

// The helper plugin authors copy (plain CommonJS, shipped with the echo plugin).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyIdentity } = require('../../plugins/echo/portico-identity.js') as {
  verifyIdentity(
    headers: IncomingHttpHeaders | object,
    options: { secret: string; plugin: string; now?: number; clockToleranceSec?: number },
  ): { id: string; name: string; roles: string[]; iat: number; exp: number } | null;
};

const user = {
  id: 'alice',
  name: 'Alice Liddell',
  roles: ['user', 'ops'],
  iat: 1_700_000_000,
  exp: 1_700_003_600,
};
/** A moment inside the token's lifetime, in milliseconds. */
const NOW = 1_700_001_000_000;

describe('plugin identity signatures', () => {
  const config = Object.assign(new PorticoConfig(), {
    SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  let clockMs = NOW;
  const identity = new PluginIdentityService(config, { now: () => clockMs });
  const keyOf = (plugin: string) => ({ secret: identity.secretFor(plugin), plugin, now: NOW });

  it('derives a different key per plugin, and never the host key', () => {
    const a = identity.secretFor('plugin-a');
    const b = identity.secretFor('plugin-b');
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(a).not.toBe(Buffer.from(config.SECRETS_KEY ?? '', 'base64').toString('hex'));
  });

  it('headers signed for a plugin verify with that plugin’s key, scheme named in the value', () => {
    const headers = identity.headersFor('plugin-a', user);
    expect(headers['x-plugin-user-signature']).toMatch(/^v2=[0-9a-f]{64}$/);
    expect(headers['x-plugin-user-exp']).toBe(String(user.exp));
    expect(verifyIdentity(headers, keyOf('plugin-a'))).toEqual(user);
  });

  it('the helper and the host build the same netstring message', () => {
    const message = identityMessage('p', {
      id: 'é',
      name: '',
      roles: ['a', 'b'],
      iat: '1',
      exp: '2',
    });
    expect(message).toBe(
      `${IDENTITY_CONTEXT.length}:${IDENTITY_CONTEXT},1:p,2:é,0:,1:2,1:a,1:b,1:1,1:2,`,
    );
  });

  it('percent-encodes any name, role and id, and still verifies', () => {
    const odd = { ...user, id: 'a,b\nc', name: 'Ä 名前 %41 ,', roles: ['x,y', 'ünï', '%'] };
    const headers = identity.headersFor('plugin-a', odd);
    expect(verifyIdentity(headers, keyOf('plugin-a'))).toEqual(odd);
  });

  it('a name with a lone surrogate is signed with U+FFFD instead of failing', () => {
    const headers = identity.headersFor('plugin-a', { ...user, name: 'x\ud800y' });
    expect(verifyIdentity(headers, keyOf('plugin-a'))).toMatchObject({ name: 'x\ufffdy' });
  });

  it('drops empty roles (they could not be told apart from none)', () => {
    const headers = identity.headersFor('plugin-a', { ...user, roles: ['', 'ops', ''] });
    expect(headers['x-plugin-user-roles']).toBe('ops');
    expect(verifyIdentity(headers, keyOf('plugin-a'))).toMatchObject({ roles: ['ops'] });
    const none = identity.headersFor('plugin-a', { ...user, roles: [] });
    expect(verifyIdentity(none, keyOf('plugin-a'))).toMatchObject({ roles: [] });
  });

  it('accepts an identity up to the clock tolerance past its expiry, and refuses it after', () => {
    const headers = identity.headersFor('plugin-a', user);
    const at = (ms: number) => verifyIdentity(headers, { ...keyOf('plugin-a'), now: ms });
    expect(at(user.exp * 1000)).not.toBeNull();
    expect(at((user.exp + 30) * 1000)).not.toBeNull();
    expect(at((user.exp + 31) * 1000)).toBeNull();
    expect(
      verifyIdentity(headers, {
        ...keyOf('plugin-a'),
        now: (user.exp + 1) * 1000,
        clockToleranceSec: 0,
      }),
    ).toBeNull();
  });

  it('a token without exp gets a TTL expiry, signed again before it runs out', () => {
    clockMs = NOW;
    const principal = { ...user, exp: undefined };
    const first = identity.headersFor('plugin-a', principal);
    const exp = NOW / 1000 + IDENTITY_TTL_SECONDS;
    expect(first['x-plugin-user-exp']).toBe(String(exp));
    expect(verifyIdentity(first, keyOf('plugin-a'))).toMatchObject({ exp });
    clockMs = NOW + 10_000;
    expect(identity.headersFor('plugin-a', principal)).toBe(first);
    clockMs = (exp - 30) * 1000;
    const renewed = identity.headersFor('plugin-a', principal);
    expect(renewed).not.toBe(first);
    expect(Number(renewed['x-plugin-user-exp'])).toBe(exp - 30 + IDENTITY_TTL_SECONDS);
    clockMs = NOW;
  });

  it('signs once per principal and plugin, and never hands one user another user’s headers', () => {
    const principal = { ...user };
    const first = identity.headersFor('plugin-a', principal);
    expect(identity.headersFor('plugin-a', principal)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(identity.headersFor('plugin-b', principal)).not.toEqual(first);
    const bob = { ...user, id: 'bob', name: 'Bob' };
    expect(verifyIdentity(identity.headersFor('plugin-a', bob), keyOf('plugin-a'))).toEqual(bob);
    // An equal principal in another object gets equal (freshly signed) headers.
    expect(identity.headersFor('plugin-a', { ...user })).toEqual(first);
  });

  it('the host signs exactly the documented message', () => {
    const headers = identity.headersFor('plugin-a', user);
    const mac = createHmac('sha256', identity.secretFor('plugin-a'))
      .update(
        identityMessage('plugin-a', {
          id: user.id,
          name: user.name,
          roles: user.roles,
          iat: String(user.iat),
          exp: String(user.exp),
        }),
      )
      .digest('hex');
    expect(headers['x-plugin-user-signature']).toBe(`v2=${mac}`);
  });
});
