import { Module } from '@nestjs/common';

import { ClockModule } from '../../common/clock.module';
import { DatabaseModule } from '../../database/database.module';
import { ManifestModule } from '../manifest/manifest.module';
import { PluginIdentityService } from './plugin-identity.service';
import { PluginSecretsService } from './plugin-secrets.service';
import { SecretRedaction } from './secret-redaction.service';
import { SecretSources } from './secret-sources.service';
import { SecretsController } from './secrets.controller';
import { mountedSecretsProvider, secretStoreProvider } from './secrets.providers';

/**
 * The secrets room (docs/plugin-contract.md §5, §7): the encrypted store (SECRET_STORE) and the
 * mounted files (MOUNTED_SECRETS) behind injection tokens, which of them wins (SecretSources),
 * redaction of plugin output (SecretRedaction), the write-only admin API and each plugin's
 * identity key. Other rooms get a plugin's values and identity only through the two services
 * exported here; it never imports the process room, which turns SECRETS_UNAVAILABLE from
 * `envFor` into a failed start.
 */
@Module({
  imports: [ClockModule, DatabaseModule, ManifestModule],
  controllers: [SecretsController],
  providers: [
    secretStoreProvider,
    mountedSecretsProvider,
    SecretSources,
    SecretRedaction,
    PluginSecretsService,
    PluginIdentityService,
  ],
  exports: [PluginSecretsService, PluginIdentityService],
})
export class SecretsModule {}
