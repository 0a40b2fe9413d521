import { Expose, Transform, Type } from 'class-transformer';
import {
  IsArray,
  IsDefined,
  IsIn,
  IsObject,
  IsOptional,
  IsString,
  ValidateNested,
} from 'class-validator';

import {
  MAX_MESSAGE_BYTES_MAX,
  MAX_MESSAGE_BYTES_MIN,
  PLUGIN_SLOTS,
  PLUGIN_UI_TYPES,
  PluginSlot,
  PluginUiType,
  READY_TIMEOUT_MS_MAX,
  READY_TIMEOUT_MS_MIN,
} from './manifest.constants';
import {
  IsIntInRange,
  IsNonEmptyString,
  IsPluginName,
  IsRelativePluginPath,
  IsUniqueBy,
} from './manifest.validators';
import { RestartPolicyDto } from './restart-policy.dto';
import { SecretDeclarationDto } from './secret-declaration.dto';

// `./index.js` is how many manifests spell `index.js`; keep the form asset URLs use.
const stripLeadingDotSlash = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' ? value.replace(/^(?:\.\/)+/, '') : value;

/**
 * A plugin's `manifest.json` (docs/plugin-contract.md §1), validated once when its folder is scanned.
 * Fields not declared here are accepted and dropped. Each property carries one constraint
 * (besides presence) so that its message does not depend on decorator order.
 */
export class ManifestDto {
  /** The plugin's id in every URL. */
  @Expose()
  @IsDefined({ message: 'name is required' })
  @IsPluginName()
  public name!: string;

  @Expose()
  @IsDefined({ message: 'displayName is required' })
  @IsNonEmptyString()
  public displayName!: string;

  /** Frontend entry file, relative to the plugin folder; served under `/assets/`. */
  @Expose()
  @Transform(stripLeadingDotSlash)
  @IsDefined({ message: 'entry is required' })
  @IsRelativePluginPath()
  public entry!: string;

  /** Server entry file, run as `node <server>` in the plugin folder; absent = frontend only. */
  @Expose()
  @Transform(stripLeadingDotSlash)
  @IsOptional()
  @IsRelativePluginPath()
  public server?: string;

  /** How long the server may take to print its ready line. */
  @Expose()
  @IsOptional()
  @IsIntInRange(READY_TIMEOUT_MS_MIN, READY_TIMEOUT_MS_MAX)
  public readyTimeoutMs?: number;

  /** Largest WebSocket message relayed to or from the plugin. */
  @Expose()
  @IsOptional()
  @IsIntInRange(MAX_MESSAGE_BYTES_MIN, MAX_MESSAGE_BYTES_MAX)
  public maxMessageBytes?: number;

  @Expose()
  @IsOptional()
  @IsArray()
  @ValidateNested({ each: true })
  @IsUniqueBy('key')
  @Type(() => SecretDeclarationDto)
  public secrets?: SecretDeclarationDto[];

  @Expose()
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => RestartPolicyDto)
  public restart?: RestartPolicyDto;

  @Expose()
  @IsOptional()
  @IsString()
  public version?: string;

  @Expose()
  @IsOptional()
  @IsString()
  public description?: string;

  @Expose()
  @IsOptional()
  @IsString()
  public author?: string;

  @Expose()
  @IsOptional()
  @IsString()
  public icon?: string;

  @Expose()
  @IsOptional()
  @IsIn(PLUGIN_UI_TYPES)
  public type?: PluginUiType;

  @Expose()
  @IsOptional()
  @IsIn(PLUGIN_SLOTS)
  public slot?: PluginSlot;

  @Expose()
  @IsOptional()
  @IsArray()
  @IsString({ each: true })
  public permissions?: string[];
}
