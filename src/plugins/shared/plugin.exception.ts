export enum PluginExceptionCode {
  /** No plugin of that name (HTTP 404, WebSocket 4404). */
  UNKNOWN_PLUGIN = 'UNKNOWN_PLUGIN',
  /** The plugin exists but its server is not running (HTTP 503 + Retry-After, WebSocket 4503). */
  NOT_RUNNING = 'NOT_RUNNING',
  /** The plugin's server refused the connection or answered badly (HTTP 502, WebSocket 4502). */
  UPSTREAM_REFUSED = 'UPSTREAM_REFUSED',
  /** The plugin's server did not answer in time (HTTP 504, WebSocket 4504). */
  UPSTREAM_TIMEOUT = 'UPSTREAM_TIMEOUT',
  /** The request conflicts with the plugin's state, e.g. restarting an invalid plugin (HTTP 409). */
  CONFLICT = 'CONFLICT',
  /** The user lacks every role the plugin is restricted to (HTTP 403, before any WebSocket 101). */
  FORBIDDEN = 'FORBIDDEN',
  /** No such file inside the plugin folder (HTTP 404). */
  FILE_NOT_FOUND = 'FILE_NOT_FOUND',
}

/** The one error type plugin-facing code throws; mapped to HTTP and WebSocket codes in one place. */
export class PluginException extends Error {
  public constructor(
    public readonly code: PluginExceptionCode,
    message: string,
  ) {
    super(message);
    this.name = 'PluginException';
  }
}
