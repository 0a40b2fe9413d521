import { Controller, Get, Header, Param, Req, UseInterceptors } from '@nestjs/common';

import type { Request } from 'express';

import type { Principal } from '../../auth/principal';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import { assertAccess } from '../shared/plugin-access';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { isPluginName } from '../shared/plugin.types';
import { AssetCacheInterceptor } from './asset-cache.interceptor';
import { AssetFile } from './asset-file';
import { toAssetPath } from './asset-path';

/** Serves the files of a plugin's folder, its frontend in particular (docs/plugin-contract.md §3). */
@Controller('api/plugins')
export class AssetsController {
  public constructor(private readonly registry: PluginRegistry) {}

  @Get(':name/assets/*path')
  @Header('X-Content-Type-Options', 'nosniff')
  @UseInterceptors(AssetCacheInterceptor)
  public async asset(
    @Param('name') name: string,
    @Param('path') path: string | string[],
    @Req() req: Request & { user?: Principal },
  ): Promise<AssetFile> {
    if (!isPluginName(name))
      throw new PluginException(PluginExceptionCode.UNKNOWN_PLUGIN, 'Unknown plugin');
    assertAccess(this.registry.require(name), req.user);
    const relPath = toAssetPath(path, req.originalUrl);
    if (relPath === undefined)
      throw new PluginException(PluginExceptionCode.FILE_NOT_FOUND, 'File not found');
    return AssetFile.open(await this.registry.resolveFile(name, relPath));
  }
}
