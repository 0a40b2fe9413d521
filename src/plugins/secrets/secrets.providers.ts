import type { Provider } from '@nestjs/common';

import { PluginSecretsService } from './plugin-secrets.service';

/** Providers SecretsController and the process manager need besides PluginRegistry. */
export const SECRETS_PROVIDERS: Provider[] = [PluginSecretsService];
