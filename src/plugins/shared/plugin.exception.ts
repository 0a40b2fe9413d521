import { DomainException } from '../../common/domain-exception';

export enum PluginExceptionCode {
  /** No plugin of that name (HTTP 404; WebSocket 4404). */
  UNKNOWN_PLUGIN = 'UNKNOWN_PLUGIN',
  /** The plugin exists but its server is not running (HTTP 503 + Retry-After; WebSocket 4503). */
  NOT_RUNNING = 'NOT_RUNNING',
  /** The plugin's server refused the connection or answered badly (HTTP 502; WebSocket 4502). */
  UPSTREAM_REFUSED = 'UPSTREAM_REFUSED',
  /** The plugin's server did not answer in time (HTTP 504; WebSocket 4504). */
  UPSTREAM_TIMEOUT = 'UPSTREAM_TIMEOUT',
  /** The request conflicts with the plugin's state, e.g. restarting an invalid plugin (HTTP 409). */
  CONFLICT = 'CONFLICT',
  /** The user lacks every role the plugin is restricted to (HTTP 403, before any WebSocket 101). */
  FORBIDDEN = 'FORBIDDEN',
  /** No such file inside the plugin folder (HTTP 404). */
  FILE_NOT_FOUND = 'FILE_NOT_FOUND',
  /** The request names something the plugin does not have or breaks a rule (HTTP 400). */
  INVALID_REQUEST = 'INVALID_REQUEST',
  /** The plugin declares that secret, but no value is set (HTTP 404). */
  SECRET_NOT_SET = 'SECRET_NOT_SET',
  /**
   * A value the plugin needs cannot be had: a required secret is missing, the store is
   * unreadable or SECRETS_KEY is not set (HTTP 409; at spawn, the plugin becomes `failed`).
   */
  SECRETS_UNAVAILABLE = 'SECRETS_UNAVAILABLE',
  /** Where plugin state is kept (the database) cannot be reached: reads still answer (HTTP 503). */
  STATE_UNAVAILABLE = 'STATE_UNAVAILABLE',
}

/**
 * The HTTP status for each PluginExceptionCode (docs/plugin-contract.md §8). The WebSocket
 * proxy answers the few codes that can reach a client after its upgrade with close codes of its
 * own (plugin-proxy.gateway.ts).
 */
export const PLUGIN_EXCEPTION_HTTP_STATUS: Readonly<Record<PluginExceptionCode, number>> = {
  [PluginExceptionCode.UNKNOWN_PLUGIN]: 404,
  [PluginExceptionCode.FILE_NOT_FOUND]: 404,
  [PluginExceptionCode.NOT_RUNNING]: 503,
  [PluginExceptionCode.UPSTREAM_REFUSED]: 502,
  [PluginExceptionCode.UPSTREAM_TIMEOUT]: 504,
  [PluginExceptionCode.CONFLICT]: 409,
  [PluginExceptionCode.FORBIDDEN]: 403,
  [PluginExceptionCode.INVALID_REQUEST]: 400,
  [PluginExceptionCode.SECRET_NOT_SET]: 404,
  [PluginExceptionCode.SECRETS_UNAVAILABLE]: 409,
  [PluginExceptionCode.STATE_UNAVAILABLE]: 503,
};

/** Seconds a client should wait before retrying a plugin that is not running. */
export const RETRY_AFTER_SECONDS = 2;

/**
 * The one error type plugin-facing code throws; its HTTP status and WebSocket close code come
 * from one table (PLUGIN_EXCEPTION_HTTP_STATUS above).
 */
export class PluginException extends DomainException {
  public constructor(
    public readonly code: PluginExceptionCode,
    message: string,
  ) {
    super(message);
    this.name = 'PluginException';
  }

  public get httpStatus(): number {
    return PLUGIN_EXCEPTION_HTTP_STATUS[this.code];
  }

  public override get httpHeaders(): Readonly<Record<string, string>> {
    return this.code === PluginExceptionCode.NOT_RUNNING
      ? { 'Retry-After': String(RETRY_AFTER_SECONDS) }
      : {};
  }
}
