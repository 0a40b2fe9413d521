import { createHmac, randomBytes } from 'node:crypto';

import type { Principal } from '../../../src/auth/principal';
import { PorticoConfig } from '../../../src/config/portico-config';
import { identityMessage } from '../../../src/plugins/secrets/plugin-identity';
import { PluginIdentityService } from '../../../src/plugins/secrets/plugin-identity.service';
import { codeBlockAfter, readRepoFile } from './markdown';

interface VerifiedUser {
  id: string;
  name: string;
  roles: string[];
  iat: number;
  exp: number;
}
type Verify = (headers: Readonly<Record<string, unknown>>, now?: number) => VerifiedUser | null;

const CONTRACT = 'docs/plugin-contract.md';

/**
 * The verifier exactly as docs/plugin-contract.md §5 prints it, run as a plugin would run it:
 * with Node's `require` and a `process.env` holding PLUGIN_NAME and PLUGIN_IDENTITY_SECRET.
 */
function documentedVerifier(env: Readonly<Record<string, string>>): Verify {
  const code = codeBlockAfter(readRepoFile(CONTRACT), '<!-- identity-snippet', 'js');
  // The documented code is the subject under test, so it is compiled from the doc's own text.
  const factory = new Function('require', 'process', `${code}\nreturn verifyIdentity;`) as (
    req: NodeJS.Require,
    proc: { env: Readonly<Record<string, string>> },
  ) => Verify;
  return factory(require, { env });
}

const alice: Principal = {
  id: 'alice',
  name: 'Alice Liddell',
  roles: ['user', 'ops'],
  iat: 1_700_000_000,
  exp: 1_700_003_600,
};
/** A moment inside alice's token lifetime, in milliseconds. */
const NOW = 1_700_001_000_000;

describe('docs/plugin-contract.md §5: the identity verification snippet', () => {
  const config = Object.assign(new PorticoConfig(), {
    SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  const identity = new PluginIdentityService(config, { now: () => NOW });
  const verifierFor = (plugin: string): Verify =>
    documentedVerifier({ PLUGIN_NAME: plugin, PLUGIN_IDENTITY_SECRET: identity.secretFor(plugin) });

  it('accepts the headers the host signs for this plugin and returns the decoded user', () => {
    const headers = identity.headersFor('echo', alice);
    expect(verifierFor('echo')(headers, NOW)).toEqual(alice);
  });

  it('round-trips names and roles that need percent-encoding, and an empty role list', () => {
    const odd: Principal = {
      id: 'id,with:colons',
      name: 'Zoë, "the" 管理者 %41',
      roles: ['a,b', 'ü'],
      iat: 1,
      exp: 1_700_003_600,
    };
    const none: Principal = { ...alice, roles: [] };
    const verify = verifierFor('echo');
    expect(verify(identity.headersFor('echo', odd), NOW)).toEqual(odd);
    expect(verify(identity.headersFor('echo', none), NOW)).toEqual(none);
  });

  it('refuses headers signed for another plugin', () => {
    const headers = identity.headersFor('other', alice);
    expect(verifierFor('echo')(headers, NOW)).toBeNull();
  });

  it('refuses any altered header, roles included', () => {
    const headers = identity.headersFor('echo', alice);
    const verify = verifierFor('echo');
    const altered: Record<string, string> = {
      'x-plugin-user-id': 'mallory',
      'x-plugin-user-name': 'Mallory',
      'x-plugin-user-roles': 'user,ops,admin',
      'x-plugin-user-iat': '1700000001',
      'x-plugin-user-exp': '1800000000',
    };
    for (const [name, value] of Object.entries(altered))
      expect(verify({ ...headers, [name]: value }, NOW)).toBeNull();
  });

  it('refuses a missing header, a repeated one and a malformed escape', () => {
    const headers: Record<string, unknown> = { ...identity.headersFor('echo', alice) };
    const verify = verifierFor('echo');
    const withoutRoles = Object.fromEntries(
      Object.entries(headers).filter(([name]) => name !== 'x-plugin-user-roles'),
    );
    expect(verify(withoutRoles, NOW)).toBeNull();
    expect(verify({ ...headers, 'x-plugin-user-id': ['alice', 'alice'] }, NOW)).toBeNull();
    expect(verify({ ...headers, 'x-plugin-user-name': '%E0%A4%A' }, NOW)).toBeNull();
  });

  it('refuses the retired v1 format (a bare hex HMAC without the roles)', () => {
    const headers = identity.headersFor('echo', alice);
    const v1 = createHmac('sha256', identity.secretFor('echo'))
      .update(`echo\n${alice.id}\n${alice.name}\n${alice.iat}`)
      .digest('hex');
    const verify = verifierFor('echo');
    expect(verify({ ...headers, 'x-plugin-user-signature': v1 }, NOW)).toBeNull();
    expect(verify({ ...headers, 'x-plugin-user-signature': `v1=${v1}` }, NOW)).toBeNull();
  });

  it('accepts an identity up to 30 s past its expiry and refuses it after that', () => {
    const headers = identity.headersFor('echo', alice);
    const verify = verifierFor('echo');
    const exp = (alice.exp as number) * 1000;
    expect(verify(headers, exp + 30_000)).not.toBeNull();
    expect(verify(headers, exp + 30_001)).toBeNull();
  });

  it('refuses everything when the plugin has no PLUGIN_IDENTITY_SECRET', () => {
    const headers = identity.headersFor('echo', alice);
    expect(documentedVerifier({ PLUGIN_NAME: 'echo' })(headers, NOW)).toBeNull();
  });

  it('shows the message the host really signs in its worked example', () => {
    const message = identityMessage('echo', {
      id: 'alice',
      name: '',
      roles: ['user'],
      iat: '1',
      exp: '2',
    });
    expect(readRepoFile(CONTRACT)).toContain(`\`${message}\``);
  });
});
