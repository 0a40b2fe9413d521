import { ArrayMaxSize, IsArray, IsString, Matches } from 'class-validator';

export class SetAccessDto {
  /** Roles allowed to use the plugin (any one suffices); empty = every user. */
  @IsArray()
  @ArrayMaxSize(64)
  @IsString({ each: true })
  @Matches(/^[A-Za-z0-9_.:-]{1,128}$/, {
    each: true,
    message: 'each role must be 1-128 characters of letters, digits, _ . : -',
  })
  public roles!: string[];
}
