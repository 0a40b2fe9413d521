import { Body, Controller, Delete, HttpCode, Logger, Param, Put } from '@nestjs/common';

import { CurrentUser } from '../../auth/current-user.decorator';
import { ADMIN_ROLE, Principal } from '../../auth/principal';
import { Roles } from '../../auth/roles.decorator';
import { SetSecretDto } from './dto/set-secret.dto';
import { PluginSecretsService } from './plugin-secrets.service';

/**
 * Write-only secrets API (docs/plugin-contract.md §7): admins set and delete values, nothing reads them
 * back. Listings (`secrets` in the plugin view) say only whether and where each key is set.
 */
@Controller('api/plugins/:name/secrets')
export class SecretsController {
  private readonly logger = new Logger(SecretsController.name);

  public constructor(private readonly secrets: PluginSecretsService) {}

  @Put(':key')
  @HttpCode(204)
  @Roles(ADMIN_ROLE)
  public async set(
    @Param('name') name: string,
    @Param('key') key: string,
    @Body() body: SetSecretDto,
    @CurrentUser() user: Principal,
  ): Promise<void> {
    await this.secrets.set(name, key, body.value);
    this.logger.log({ plugin: name, event: 'secret_set', key, by: user.id });
  }

  @Delete(':key')
  @HttpCode(204)
  @Roles(ADMIN_ROLE)
  public async delete(
    @Param('name') name: string,
    @Param('key') key: string,
    @CurrentUser() user: Principal,
  ): Promise<void> {
    await this.secrets.delete(name, key);
    this.logger.log({ plugin: name, event: 'secret_deleted', key, by: user.id });
  }
}
