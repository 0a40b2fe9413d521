import { IsString, MaxLength } from 'class-validator';

import { SECRET_VALUE_MAX_BYTES } from '../secrets.constants';

export class SetSecretDto {
  /** The secret's value; write-only, never returned. The service also checks its UTF-8 size. */
  @IsString()
  @MaxLength(SECRET_VALUE_MAX_BYTES)
  public value!: string;
}
