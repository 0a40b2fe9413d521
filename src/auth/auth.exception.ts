export enum AuthExceptionCode {
  MISSING_CREDENTIALS = 'MISSING_CREDENTIALS',
  INVALID_TOKEN = 'INVALID_TOKEN',
  EXPIRED_TOKEN = 'EXPIRED_TOKEN',
  FORBIDDEN_ROLE = 'FORBIDDEN_ROLE',
}

/** Why a request was not authenticated; the message never contains the token. */
export class AuthException extends Error {
  public constructor(
    public readonly code: AuthExceptionCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuthException';
  }
}
