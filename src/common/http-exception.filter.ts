import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';

import { DomainException } from './domain-exception';

/** Every HTTP error leaves as `{ statusCode, error, message }` (docs/plugin-contract.md §3). */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  public catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let status = 500;
    let message: string | string[] = 'Internal server error';
    if (exception instanceof DomainException) {
      sendDomainError(res, exception);
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

/** The HTTP answer a DomainException carries (its status, and headers such as Retry-After). */
export function sendDomainError(res: Response, exception: DomainException): void {
  if (!res.headersSent)
    for (const [name, value] of Object.entries(exception.httpHeaders)) res.setHeader(name, value);
  sendError(res, exception.httpStatus, exception.message);
}
