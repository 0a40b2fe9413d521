import { join } from 'node:path';

import type { Provider } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { MountedSecrets } from './mounted-secrets';
import { SecretCipher } from './secret-cipher';
import { SecretStore } from './secret-store';
import { SECRET_STORE_FILE } from './secrets.constants';

/**
 * Injection token of the encrypted store in DATA_DIR (a SecretStore), or null when SECRETS_KEY
 * is not set: the host still runs, plugins that need a stored value do not start, writes get
 * 409. Tests replace it with `overrideProvider(SECRET_STORE)`.
 */
export const SECRET_STORE = Symbol('SECRET_STORE');

/** Injection token of the PLUGIN_SECRETS_DIR reader and watcher (MountedSecrets), or null. */
export const MOUNTED_SECRETS = Symbol('MOUNTED_SECRETS');

/** SECRET_STORE from PorticoConfig: DATA_DIR/secrets.enc.json sealed with SECRETS_KEY. */
export const secretStoreProvider: Provider = {
  provide: SECRET_STORE,
  inject: [PorticoConfig],
  useFactory: (config: PorticoConfig): SecretStore | null => {
    const key = SecretCipher.parseKey(config.SECRETS_KEY);
    return key === undefined
      ? null
      : new SecretStore(join(config.DATA_DIR, SECRET_STORE_FILE), new SecretCipher(key));
  },
};

/** MOUNTED_SECRETS from PorticoConfig: PLUGIN_SECRETS_DIR, if set. */
export const mountedSecretsProvider: Provider = {
  provide: MOUNTED_SECRETS,
  inject: [PorticoConfig],
  useFactory: (config: PorticoConfig): MountedSecrets | null =>
    config.PLUGIN_SECRETS_DIR === undefined ? null : new MountedSecrets(config.PLUGIN_SECRETS_DIR),
};
