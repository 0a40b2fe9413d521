import { Expose } from 'class-transformer';
import { IsBoolean, IsDefined, IsOptional, IsString } from 'class-validator';

import { IsSecretKey } from './manifest.validators';

/** One secret a plugin declares (Portico extension, docs/plugin-contract.md §1); its value is set by an admin. */
export class SecretDeclarationDto {
  /** Environment variable the value is injected as. */
  @Expose()
  @IsDefined({ message: 'key is required' })
  @IsSecretKey()
  public key!: string;

  @Expose()
  @IsOptional()
  @IsString()
  public description?: string;

  /** A required secret that is not set keeps the plugin's server from starting. */
  @Expose()
  @IsOptional()
  @IsBoolean()
  public required?: boolean;
}
