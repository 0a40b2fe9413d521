import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';

import {
  PLUGIN_EXCEPTION_STATUS,
  RETRY_AFTER_SECONDS,
} from '../plugins/shared/plugin-exception.mapping';
import { PluginException, PluginExceptionCode } from '../plugins/shared/plugin.exception';

/** Every HTTP error leaves as `{ statusCode, error, message }` (CONTRACT.md §3). */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  public catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let status = 500;
    let message: string | string[] = 'Internal server error';
    if (exception instanceof PluginException) {
      sendPluginError(res, exception);
      return;
    }
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      message =
        typeof body === 'object' && body !== null && 'message' in body
          ? (body as { message: string | string[] }).message
          : exception.message;
    } else {
      this.logger.error({ event: 'unhandled_error', err: exception });
    }
    sendError(res, status, message);
  }
}

/** Writes the contract's error body, or cuts the response if its head already left. */
export function sendError(res: Response, status: number, message: string | string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(status).json({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
}

/** The HTTP answer for a PluginException (status, Retry-After for 503). */
export function sendPluginError(res: Response, exception: PluginException): void {
  if (exception.code === PluginExceptionCode.NOT_RUNNING && !res.headersSent)
    res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
  sendError(res, PLUGIN_EXCEPTION_STATUS[exception.code].http, exception.message);
}
