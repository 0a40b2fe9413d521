import { Module } from '@nestjs/common';

import { ManifestModule } from '../manifest/manifest.module';
import { AssetCacheInterceptor } from './asset-cache.interceptor';
import { AssetsController } from './assets.controller';

/**
 * The assets room: `GET /api/plugins/:name/assets/*path`, a plugin's frontend files, confined
 * to the plugin's folder (realpath check in PluginRegistry.resolveFile) and sent with
 * `Cache-Control: no-cache` and an ETag by AssetCacheInterceptor.
 */
@Module({
  imports: [ManifestModule],
  controllers: [AssetsController],
  providers: [AssetCacheInterceptor],
})
export class AssetsModule {}
