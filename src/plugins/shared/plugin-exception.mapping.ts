import { PluginExceptionCode } from './plugin.exception';

/** HTTP status and WebSocket close code for each PluginExceptionCode (CONTRACT.md §3, §4). */
export const PLUGIN_EXCEPTION_STATUS: Record<PluginExceptionCode, { http: number; ws: number }> = {
  [PluginExceptionCode.UNKNOWN_PLUGIN]: { http: 404, ws: 4404 },
  [PluginExceptionCode.FILE_NOT_FOUND]: { http: 404, ws: 4404 },
  [PluginExceptionCode.NOT_RUNNING]: { http: 503, ws: 4503 },
  [PluginExceptionCode.UPSTREAM_REFUSED]: { http: 502, ws: 4502 },
  [PluginExceptionCode.UPSTREAM_TIMEOUT]: { http: 504, ws: 4504 },
  [PluginExceptionCode.CONFLICT]: { http: 409, ws: 4409 },
  [PluginExceptionCode.FORBIDDEN]: { http: 403, ws: 4403 },
};

/** Seconds a client should wait before retrying a plugin that is not running. */
export const RETRY_AFTER_SECONDS = 2;
