import { createHmac, randomBytes } from 'node:crypto';

import fc from 'fast-check';

import type { Principal } from '../../src/auth/principal';
import { PorticoConfig } from '../../src/config/portico-config';
import { PluginIdentityService } from '../../src/plugins/secrets/plugin-identity.service';

// The verifier plugin authors copy (plugins/echo/portico-identity.js).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyIdentity } = require('../../plugins/echo/portico-identity.js') as {
  verifyIdentity(
    headers: object,
    options: { secret: string; plugin: string; now?: number },
  ): { id: string; name: string; roles: string[]; iat: number; exp: number } | null;
};

const RUNS = Number(process.env.FC_NUM_RUNS ?? 300);
const NOW_MS = 1_800_000_000_000;
const alice: Principal = {
  id: 'alice',
  name: 'Alice',
  roles: ['user'],
  iat: NOW_MS / 1000 - 60,
  exp: NOW_MS / 1000 + 3600,
};

/**
 * What a plugin's copy of portico-identity.js accepts. Each case starts from headers Portico
 * really signed and changes what an attacker on the plugin's side of the proxy could change.
 */
describe('plugin identity headers', () => {
  const identity = new PluginIdentityService(
    Object.assign(new PorticoConfig(), { SECRETS_KEY: randomBytes(32).toString('base64') }),
    { now: () => NOW_MS },
  );
  const signed = (user: Principal, plugin = 'board'): Record<string, string> => ({
    ...identity.headersFor(plugin, user),
  });
  const verify = (headers: object, plugin = 'board', now = NOW_MS) =>
    verifyIdentity(headers, { secret: identity.secretFor(plugin), plugin, now });

  it('genuine headers → accepted with every field', () => {
    expect(verify(signed(alice))).toEqual(alice);
  });

  it('genuine signature with x-plugin-user-roles: admin added → refused', () => {
    const headers = signed(alice);
    expect(verify({ ...headers, 'x-plugin-user-roles': 'user,admin' })).toBeNull();
    expect(verify({ ...headers, 'x-plugin-user-roles': 'admin' })).toBeNull();
    expect(
      verify({ ...signed({ ...alice, roles: [] }), 'x-plugin-user-roles': 'admin' }),
    ).toBeNull();
  });

  it('roles reordered, or one role split in two at an encoded comma → refused', () => {
    const headers = signed({ ...alice, roles: ['ops', 'user'] });
    expect(verify({ ...headers, 'x-plugin-user-roles': 'user,ops' })).toBeNull();
    const joined = signed({ ...alice, roles: ['a,b'] });
    expect(joined['x-plugin-user-roles']).toBe('a%2Cb');
    expect(verify({ ...joined, 'x-plugin-user-roles': 'a,b' })).toBeNull();
  });

  it('field boundary moved (id "a\\nb" + name "c" replayed as id "a" + name "b\\nc") → refused', () => {
    const headers = signed({ ...alice, id: 'a\nb', name: 'c' });
    expect(verify(headers)).toMatchObject({ id: 'a\nb', name: 'c' });
    expect(
      verify({
        ...headers,
        'x-plugin-user-id': 'a',
        'x-plugin-user-name': encodeURIComponent('b\nc'),
      }),
    ).toBeNull();
    // The same shift between name and roles, and between roles and the timestamps.
    const named = signed({ ...alice, name: 'x', roles: ['y'] });
    expect(
      verify({
        ...named,
        'x-plugin-user-name': encodeURIComponent('x,y'),
        'x-plugin-user-roles': '',
      }),
    ).toBeNull();
  });

  it('property: any change to any identity header of a genuine set → refused', () => {
    const text = fc.string({
      unit: fc.constantFrom('a', 'b', ',', '\n', ':', '1', '%', 'é'),
      maxLength: 6,
    });
    fc.assert(
      fc.property(
        fc.record({ id: text, name: text, roles: fc.array(text, { maxLength: 3 }) }),
        fc.constantFrom(
          'x-plugin-user-id',
          'x-plugin-user-name',
          'x-plugin-user-roles',
          'x-plugin-user-iat',
          'x-plugin-user-exp',
        ),
        text,
        (fields, header, replacement) => {
          const headers = signed({ ...alice, ...fields });
          const value = encodeURIComponent(replacement);
          fc.pre(value !== headers[header]);
          expect(verify({ ...headers, [header]: value })).toBeNull();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('identity past its expiry (beyond the 30 s tolerance) → refused', () => {
    const headers = signed(alice);
    const exp = alice.exp as number;
    expect(verify(headers, 'board', (exp + 31) * 1000)).toBeNull();
    expect(verify({ ...headers, 'x-plugin-user-exp': String(exp + 86_400) })).toBeNull();
    const withoutExp: Record<string, string> = { ...headers };
    delete withoutExp['x-plugin-user-exp'];
    expect(verify(withoutExp)).toBeNull();
  });

  it('headers signed for another plugin → refused', () => {
    expect(verify(signed(alice, 'other'), 'board')).toBeNull();
    // Nor can the other plugin sign for this one with its own key.
    const forged = createHmac('sha256', identity.secretFor('other'));
    const headers = signed(alice, 'board');
    const mac = forged.update('anything').digest('hex');
    expect(verify({ ...headers, 'x-plugin-user-signature': `v2=${mac}` })).toBeNull();
  });

  it('retired v1 signature (bare hex, roles unsigned), even a genuine one → refused', () => {
    const headers = signed({ ...alice, roles: ['admin'] });
    const v1 = createHmac('sha256', identity.secretFor('board'))
      .update(`board\n${alice.id}\n${alice.name}\n${headers['x-plugin-user-iat']}`)
      .digest('hex');
    expect(verify({ ...headers, 'x-plugin-user-signature': v1 })).toBeNull();
    const mac = (headers['x-plugin-user-signature'] as string).slice(3);
    for (const value of [mac, `v1=${mac}`, `v3=${mac}`, `V2=${mac}`, `v2=${mac.toUpperCase()}`])
      expect(verify({ ...headers, 'x-plugin-user-signature': value })).toBeNull();
  });

  it('malformed percent-encoding or non-numeric timestamps → refused, never thrown', () => {
    const headers = signed(alice);
    for (const patch of [
      { 'x-plugin-user-name': '%E0%A4%A' },
      { 'x-plugin-user-roles': '%zz' },
      { 'x-plugin-user-iat': '1e9' },
      { 'x-plugin-user-exp': '-1' },
      { 'x-plugin-user-exp': ['1', '2'] },
    ])
      expect(verify({ ...headers, ...patch })).toBeNull();
  });
});
