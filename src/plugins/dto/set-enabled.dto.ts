import { IsBoolean } from 'class-validator';

export class SetEnabledDto {
  @IsBoolean()
  public enabled!: boolean;
}
