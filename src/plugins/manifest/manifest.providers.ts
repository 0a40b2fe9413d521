import type { Provider } from '@nestjs/common';

import { PluginRegistry } from './plugin-registry.service';

/** Plugin discovery and the persisted enable flags; export PluginRegistry to its users. */
export const MANIFEST_PROVIDERS: Provider[] = [PluginRegistry];
