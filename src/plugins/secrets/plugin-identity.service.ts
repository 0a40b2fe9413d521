import { createHmac, createSecretKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

import { Injectable } from '@nestjs/common';

import type { Principal } from '../../auth/principal';
import { PorticoConfig } from '../../config/portico-config';
import type { PluginName } from '../plugin.types';
import { derivePluginIdentitySecret } from './plugin-identity';

/** Headers that tell a plugin who is calling, signed with that plugin's own identity key. */
export interface IdentityHeaders {
  'x-plugin-user-id': string;
  'x-plugin-user-name': string;
  'x-plugin-user-roles': string;
  'x-plugin-user-iat': string;
  'x-plugin-user-signature': string;
}

/**
 * Derives each plugin's PLUGIN_IDENTITY_SECRET and signs identity headers with it
 * (CONTRACT.md §5). Header values are percent-encoded so any user name survives HTTP;
 * the signature covers the decoded values: `plugin\nid\nname\niat`.
 */
@Injectable()
export class PluginIdentityService {
  private readonly hostKey: Buffer;
  /** Each plugin's secret, derived once, with it as an HMAC key so signing does not convert it. */
  private readonly identities = new Map<PluginName, { secret: string; key: KeyObject }>();
  private readonly signed = new WeakMap<Principal, Map<PluginName, Readonly<IdentityHeaders>>>();

  public constructor(config: PorticoConfig) {
    this.hostKey = Buffer.from(config.SECRETS_KEY ?? '', 'base64');
  }

  public secretFor(plugin: PluginName): string {
    return this.identityOf(plugin).secret;
  }

  /**
   * The signed headers for `user` calling `plugin`. Remembered per principal object: the
   * verified-token cache hands out the same principal for every handshake with one token, so a
   * reconnecting client is not signed again; a principal that is no longer referenced is dropped
   * with its entries.
   */
  public headersFor(plugin: PluginName, user: Principal): Readonly<IdentityHeaders> {
    let perPlugin = this.signed.get(user);
    if (perPlugin === undefined) {
      perPlugin = new Map();
      this.signed.set(user, perPlugin);
    }
    let headers = perPlugin.get(plugin);
    if (headers === undefined) {
      headers = Object.freeze(this.sign(plugin, user));
      perPlugin.set(plugin, headers);
    }
    return headers;
  }

  private sign(plugin: PluginName, user: Principal): IdentityHeaders {
    const iat = String(user.iat);
    const signature = createHmac('sha256', this.identityOf(plugin).key)
      .update(`${plugin}\n${user.id}\n${user.name}\n${iat}`)
      .digest('hex');
    return {
      'x-plugin-user-id': encodeURIComponent(user.id),
      'x-plugin-user-name': encodeURIComponent(user.name),
      'x-plugin-user-roles': user.roles.map(encodeURIComponent).join(','),
      'x-plugin-user-iat': iat,
      'x-plugin-user-signature': signature,
    };
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
