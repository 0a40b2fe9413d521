import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';

import { CurrentUser } from '../auth/current-user.decorator';
import { ADMIN_ROLE, Principal } from '../auth/principal';
import { Roles } from '../auth/roles.decorator';
import { LogsQueryDto } from './dto/logs-query.dto';
import { SetAccessDto } from './dto/set-access.dto';
import { SetEnabledDto } from './dto/set-enabled.dto';
import type { ManifestDto } from './manifest/manifest.dto';
import type { PluginDescriptor, RescanResult } from './manifest/plugin-descriptor';
import { PluginException, PluginExceptionCode } from './shared/plugin.exception';
import type { PluginView } from './plugin-view';
import { PluginViews } from './plugin-views.service';
import { PluginsService } from './plugins.service';
import type { LogLine } from './process/log-ring-buffer';

/** The management API (docs/plugin-contract.md §3); every route needs a user, mutations need `admin`. */
@Controller('api/plugins')
export class PluginsController {
  public constructor(
    private readonly plugins: PluginsService,
    private readonly views: PluginViews,
  ) {}

  @Get()
  public list(@CurrentUser() user: Principal): PluginView[] {
    return this.plugins.list().map((d) => this.view(d, user));
  }

  @Post('rescan')
  @HttpCode(200)
  @Roles(ADMIN_ROLE)
  public rescan(): Promise<RescanResult> {
    return this.plugins.rescan();
  }

  @Get(':name')
  public get(@Param('name') name: string, @CurrentUser() user: Principal): PluginView {
    return this.view(this.plugins.get(name), user);
  }

  @Get(':name/manifest')
  public manifest(@Param('name') name: string): ManifestDto {
    const descriptor = this.plugins.get(name);
    if (descriptor.manifest === undefined) {
      throw new PluginException(
        PluginExceptionCode.CONFLICT,
        `plugin ${name} is invalid: ${descriptor.invalidReason ?? 'no manifest'}`,
      );
    }
    return descriptor.manifest;
  }

  @Put(':name/enable')
  @Roles(ADMIN_ROLE)
  public async enable(
    @Param('name') name: string,
    @Body() body: SetEnabledDto,
    @CurrentUser() user: Principal,
  ): Promise<PluginView> {
    return this.view(await this.plugins.setEnabled(name, body.enabled), user);
  }

  @Put(':name/access')
  @Roles(ADMIN_ROLE)
  public async access(
    @Param('name') name: string,
    @Body() body: SetAccessDto,
    @CurrentUser() user: Principal,
  ): Promise<PluginView> {
    return this.view(await this.plugins.setAccess(name, body.roles), user);
  }

  @Post(':name/restart')
  @HttpCode(202)
  @Roles(ADMIN_ROLE)
  public restart(@Param('name') name: string, @CurrentUser() user: Principal): PluginView {
    return this.view(this.plugins.restart(name), user);
  }

  @Get(':name/logs')
  @Roles(ADMIN_ROLE)
  public logs(@Param('name') name: string, @Query() query: LogsQueryDto): { lines: LogLine[] } {
    return { lines: this.plugins.logs(name, query.tail) };
  }

  private view(descriptor: PluginDescriptor, user: Principal): PluginView {
    return this.views.view(descriptor, user);
  }
}
