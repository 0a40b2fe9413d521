import { join } from 'node:path';

import type { Provider } from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { Database, DATABASE } from '../../database/database.module';
import { FileSecretStore } from './file-secret-store';
import { MountedSecrets } from './mounted-secrets';
import { PgSecretStore } from './pg-secret-store';
import { SecretCipher } from './secret-cipher';
import type { SecretStore } from './secret-store';
import { SECRET_STORE_FILE } from './secrets.constants';

/**
 * Injection token of the encrypted store (a SecretStore: in the DATABASE_URL database, else in
 * DATA_DIR), or null when SECRETS_KEY is not set: the host still runs, plugins that need a
 * stored value do not start, writes get 409. Tests replace it with `overrideProvider`.
 */
export const SECRET_STORE = Symbol('SECRET_STORE');

/** Injection token of the PLUGIN_SECRETS_DIR reader and watcher (MountedSecrets), or null. */
export const MOUNTED_SECRETS = Symbol('MOUNTED_SECRETS');

/**
 * SECRET_STORE from PorticoConfig: sealed with SECRETS_KEY, in the database when DATABASE_URL
 * is set (shared by every replica), else in DATA_DIR/secrets.enc.json.
 */
export const secretStoreProvider: Provider = {
  provide: SECRET_STORE,
  inject: [PorticoConfig, DATABASE],
  useFactory: (config: PorticoConfig, database: Database | null): SecretStore | null => {
    const key = SecretCipher.parseKey(config.SECRETS_KEY);
    if (key === undefined) return null;
    const cipher = new SecretCipher(key);
    return database === null
      ? new FileSecretStore(join(config.DATA_DIR, SECRET_STORE_FILE), cipher)
      : new PgSecretStore(database.pool, cipher, database.location, database.listener);
  },
};

/** MOUNTED_SECRETS from PorticoConfig: PLUGIN_SECRETS_DIR, if set. */
export const mountedSecretsProvider: Provider = {
  provide: MOUNTED_SECRETS,
  inject: [PorticoConfig],
  useFactory: (config: PorticoConfig): MountedSecrets | null =>
    config.PLUGIN_SECRETS_DIR === undefined ? null : new MountedSecrets(config.PLUGIN_SECRETS_DIR),
};
