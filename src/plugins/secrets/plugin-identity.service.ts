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
  private readonly secrets = new Map<PluginName, string>();
  /** The same secrets as HMAC keys, so signing a handshake does not convert the key each time. */
  private readonly keys = new Map<PluginName, KeyObject>();

  public constructor(config: PorticoConfig) {
    this.hostKey = Buffer.from(config.SECRETS_KEY ?? '', 'base64');
  }

  public secretFor(plugin: PluginName): string {
    let secret = this.secrets.get(plugin);
    if (secret === undefined) {
      secret = derivePluginIdentitySecret(this.hostKey, plugin);
      this.secrets.set(plugin, secret);
    }
    return secret;
  }

  public headersFor(plugin: PluginName, user: Principal): IdentityHeaders {
    const iat = String(user.iat);
    let key = this.keys.get(plugin);
    if (key === undefined) {
      key = createSecretKey(Buffer.from(this.secretFor(plugin), 'utf8'));
      this.keys.set(plugin, key);
    }
    const signature = createHmac('sha256', key)
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
}
