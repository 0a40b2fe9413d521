import { createHmac, createSecretKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

import { Inject, Injectable } from '@nestjs/common';

import type { Principal } from '../../auth/principal';
import { PorticoConfig } from '../../config/portico-config';
import type { PluginName } from '../shared/plugin.types';
import { Clock, CLOCK, systemClock } from '../../common/clock';
import { wellFormed } from '../../common/well-formed';
import { derivePluginIdentitySecret, IDENTITY_SCHEME, identityMessage } from './plugin-identity';

/** Headers that tell a plugin who is calling, signed with that plugin's own identity key. */
interface IdentityHeaders {
  'x-plugin-user-id': string;
  'x-plugin-user-name': string;
  'x-plugin-user-roles': string;
  'x-plugin-user-iat': string;
  'x-plugin-user-exp': string;
  'x-plugin-user-signature': string;
}

/** Lifetime of an identity whose token has no `exp` (JWT_ALLOW_NO_EXP). */
export const IDENTITY_TTL_SECONDS = 300;
/** Such an identity is signed again once less than this is left of it. */
const IDENTITY_RENEW_SECONDS = 60;

/**
 * Derives each plugin's PLUGIN_IDENTITY_SECRET and signs identity headers with it
 * (docs/plugin-contract.md §5). Header values are percent-encoded so any user name survives HTTP; the
 * signature (`v2=<hex HMAC-SHA256>`) covers the decoded values of every identity header, roles
 * included, plus the plugin name (`identityMessage`). `x-plugin-user-exp` is the token's `exp`,
 * or, for a token without one, the signing time plus IDENTITY_TTL_SECONDS.
 */
@Injectable()
export class PluginIdentityService {
  private readonly hostKey: Buffer;
  /** Each plugin's secret, derived once, with it as an HMAC key so signing does not convert it. */
  private readonly identities = new Map<PluginName, { secret: string; key: KeyObject }>();
  private readonly signed = new WeakMap<Principal, Map<PluginName, Signed>>();

  public constructor(
    config: PorticoConfig,
    @Inject(CLOCK) private readonly clock: Pick<Clock, 'now'> = systemClock,
  ) {
    this.hostKey = Buffer.from(config.SECRETS_KEY ?? '', 'base64');
  }

  public secretFor(plugin: PluginName): string {
    return this.identityOf(plugin).secret;
  }

  /**
   * The signed headers for `user` calling `plugin`. Remembered per principal object: the
   * verified-token cache hands out the same principal for every handshake with one token, so a
   * reconnecting client is not signed again; a principal that is no longer referenced is dropped
   * with its entries. Headers whose expiry came from the TTL are signed again before it runs out.
   */
  public headersFor(plugin: PluginName, user: Principal): Readonly<IdentityHeaders> {
    let perPlugin = this.signed.get(user);
    if (perPlugin === undefined) {
      perPlugin = new Map();
      this.signed.set(user, perPlugin);
    }
    let entry = perPlugin.get(plugin);
    if (entry === undefined || (entry.renewAt !== undefined && this.seconds() >= entry.renewAt)) {
      entry = this.sign(plugin, user);
      perPlugin.set(plugin, entry);
    }
    return entry.headers;
  }

  private sign(plugin: PluginName, user: Principal): Signed {
    const fromToken = user.exp !== undefined;
    const expiry = fromToken ? wholeSeconds(user.exp) : this.seconds() + IDENTITY_TTL_SECONDS;
    const id = wellFormed(user.id);
    const name = wellFormed(user.name);
    // An empty role grants nothing and could not be told apart from no roles in the header.
    const roles = user.roles.map(wellFormed).filter((role) => role.length > 0);
    const iat = String(wholeSeconds(user.iat));
    const exp = String(expiry);
    const mac = createHmac('sha256', this.identityOf(plugin).key)
      .update(identityMessage(plugin, { id, name, roles, iat, exp }), 'utf8')
      .digest('hex');
    return {
      headers: Object.freeze({
        'x-plugin-user-id': encodeURIComponent(id),
        'x-plugin-user-name': encodeURIComponent(name),
        'x-plugin-user-roles': roles.map(encodeURIComponent).join(','),
        'x-plugin-user-iat': iat,
        'x-plugin-user-exp': exp,
        'x-plugin-user-signature': `${IDENTITY_SCHEME}=${mac}`,
      }),
      renewAt: fromToken ? undefined : expiry - IDENTITY_RENEW_SECONDS,
    };
  }

  private seconds(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  private identityOf(plugin: PluginName): { secret: string; key: KeyObject } {
    let identity = this.identities.get(plugin);
    if (identity === undefined) {
      const secret = derivePluginIdentitySecret(this.hostKey, plugin);
      identity = { secret, key: createSecretKey(Buffer.from(secret, 'utf8')) };
      this.identities.set(plugin, identity);
    }
    return identity;
  }
}

interface Signed {
  readonly headers: Readonly<IdentityHeaders>;
  /** When to sign again (seconds); undefined: the expiry is the token's own. */
  readonly renewAt: number | undefined;
}

/** A timestamp claim as the non-negative whole seconds that are signed and sent. */
function wholeSeconds(value: number | undefined): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}
