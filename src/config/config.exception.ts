export enum ConfigExceptionCode {
  INVALID_VALUE = 'INVALID_VALUE',
  MISSING_IN_PRODUCTION = 'MISSING_IN_PRODUCTION',
  KEY_FILE_UNREADABLE = 'KEY_FILE_UNREADABLE',
}

/** Thrown at startup; the message names the offending variable(s) and is shown as-is. */
export class ConfigException extends Error {
  public constructor(
    public readonly code: ConfigExceptionCode,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigException';
  }
}
