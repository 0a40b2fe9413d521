import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';

import { PorticoConfig } from '../../src/config/portico-config';
import { PluginIdentityService } from '../../src/plugins/secrets/plugin-identity.service';

// The helper plugin authors copy (plain CommonJS, shipped with the echo plugin).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyIdentity } = require('../../plugins/echo/portico-identity.js') as {
  verifyIdentity(
    headers: IncomingHttpHeaders | object,
    options: { secret: string; plugin: string },
  ): { id: string; name: string; roles: string[]; iat: number } | null;
};

const user = { id: 'alice', name: 'Alice Liddell', roles: ['user', 'ops'], iat: 1_700_000_000, exp: 1_700_003_600 };

describe('plugin identity signatures', () => {
  const config = Object.assign(new PorticoConfig(), {
    SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  const identity = new PluginIdentityService(config);

  it('derives a different key per plugin, and never the host key', () => {
    const a = identity.secretFor('plugin-a');
    const b = identity.secretFor('plugin-b');
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(a).not.toBe(Buffer.from(config.SECRETS_KEY ?? '', 'base64').toString('hex'));
  });

  it('headers signed for a plugin verify with that plugin’s key', () => {
    const headers = identity.headersFor('plugin-a', user);
    expect(
      verifyIdentity(headers, { secret: identity.secretFor('plugin-a'), plugin: 'plugin-a' }),
    ).toEqual(user);
  });

  it('plugin A cannot produce a signature plugin B accepts', () => {
    // Everything A knows: its own key and the headers it received.
    const keyA = identity.secretFor('plugin-a');
    const received = identity.headersFor('plugin-a', user);
    const b = { secret: identity.secretFor('plugin-b'), plugin: 'plugin-b' };
    expect(verifyIdentity(received, b)).toBeNull();
    // A forging headers for B with its own key fails too.
    const { createHmac } = jest.requireActual<typeof import('node:crypto')>('node:crypto');
    const forged = {
      ...received,
      'x-plugin-user-signature': createHmac('sha256', keyA)
        .update(`plugin-b\nalice\nAlice Liddell\n${user.iat}`)
        .digest('hex'),
    };
    expect(verifyIdentity(forged, b)).toBeNull();
  });

  it('rejects tampered identity headers', () => {
    const a = { secret: identity.secretFor('plugin-a'), plugin: 'plugin-a' };
    const headers = identity.headersFor('plugin-a', user);
    expect(verifyIdentity({ ...headers, 'x-plugin-user-id': 'mallory' }, a)).toBeNull();
    expect(verifyIdentity({ ...headers, 'x-plugin-user-iat': '1' }, a)).toBeNull();
    expect(verifyIdentity({ ...headers, 'x-plugin-user-signature': 'zz' }, a)).toBeNull();
  });

  it('signs once per principal and plugin, and never hands one user another user’s headers', () => {
    const principal = { ...user };
    const first = identity.headersFor('plugin-a', principal);
    expect(identity.headersFor('plugin-a', principal)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(identity.headersFor('plugin-b', principal)).not.toEqual(first);
    const bob = { ...user, id: 'bob', name: 'Bob' };
    const a = { secret: identity.secretFor('plugin-a'), plugin: 'plugin-a' };
    expect(verifyIdentity(identity.headersFor('plugin-a', bob), a)).toEqual(bob);
    // An equal principal in another object gets equal (freshly signed) headers.
    expect(identity.headersFor('plugin-a', { ...user })).toEqual(first);
  });
});
