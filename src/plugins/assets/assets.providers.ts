import type { Provider } from '@nestjs/common';

import { AssetCacheInterceptor } from './asset-cache.interceptor';

/** Providers AssetsController needs besides PluginRegistry. */
export const ASSETS_PROVIDERS: Provider[] = [AssetCacheInterceptor];
