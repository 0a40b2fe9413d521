import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';

import { PLUGIN_EXCEPTION_STATUS, RETRY_AFTER_SECONDS } from '../plugins/plugin-exception.mapping';
import { PluginException, PluginExceptionCode } from '../plugins/plugin.exception';

/** Every HTTP error leaves as `{ statusCode, error, message }` (CONTRACT.md §3). */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  public catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let status = 500;
    let message: string | string[] = 'Internal server error';
    if (exception instanceof PluginException) {
      status = PLUGIN_EXCEPTION_STATUS[exception.code].http;
      message = exception.message;
      if (exception.code === PluginExceptionCode.NOT_RUNNING)
        res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      message =
        typeof body === 'object' && body !== null && 'message' in body
          ? (body as { message: string | string[] }).message
          : exception.message;
    } else {
      this.logger.error({ event: 'unhandled_error', err: exception });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).json({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
  }
}
