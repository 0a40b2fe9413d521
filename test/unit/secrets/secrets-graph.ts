import { join } from 'node:path';

import { PorticoConfig } from '../../../src/config/portico-config';
import { PluginRegistry } from '../../../src/plugins/manifest/plugin-registry.service';
import { MountedSecrets } from '../../../src/plugins/secrets/mounted-secrets';
import { PluginSecretsService } from '../../../src/plugins/secrets/plugin-secrets.service';
import { SecretCipher } from '../../../src/plugins/secrets/secret-cipher';
import { SecretRedaction } from '../../../src/plugins/secrets/secret-redaction.service';
import { SecretSources } from '../../../src/plugins/secrets/secret-sources.service';
import { FileSecretStore } from '../../../src/plugins/secrets/file-secret-store';

/** The secrets room's services wired by hand, as SecretsModule wires them, over real files. */
export interface SecretsGraph {
  readonly service: PluginSecretsService;
  /** The store in DATA_DIR; null without a usable SECRETS_KEY. */
  readonly store: FileSecretStore | null;
  /** PLUGIN_SECRETS_DIR's watcher; null when it is not set. `poll()` runs its check now. */
  readonly mounted: MountedSecrets | null;
}

/** Builds and starts (`onModuleInit`) the services; the caller calls `onModuleDestroy`. */
export function secretsGraph(config: PorticoConfig, registry: PluginRegistry): SecretsGraph {
  const key = SecretCipher.parseKey(config.SECRETS_KEY);
  const store =
    key === undefined
      ? null
      : new FileSecretStore(join(config.DATA_DIR, 'secrets.enc.json'), new SecretCipher(key));
  const mounted =
    config.PLUGIN_SECRETS_DIR === undefined ? null : new MountedSecrets(config.PLUGIN_SECRETS_DIR);
  const sources = new SecretSources(store, mounted, registry);
  const service = new PluginSecretsService(sources, new SecretRedaction(sources), registry, config);
  // The file store loads synchronously: nothing to wait for here.
  void service.onModuleInit();
  return { service, store, mounted };
}
