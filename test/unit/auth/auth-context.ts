import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

import { ExecutionContext, HttpException } from '@nestjs/common';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';

import { signCompact } from '../../../scripts/lib/token-minter';
import type { AuthenticatedRequest } from '../../../src/auth/principal';
import { PorticoConfig } from '../../../src/config/portico-config';

export const SECRET = 'unit-test-secret-unit-test-secret-0123456789';

/** An HS256 token of exactly these claims plus `iat`: no `exp` unless given. */
export function hs256(claims: Record<string, unknown>, secret: string = SECRET): string {
  const iat = Math.floor(Date.now() / 1000);
  return signCompact({ alg: 'HS256', typ: 'JWT' }, { iat, ...claims }, secret);
}

export function config(overrides: Partial<PorticoConfig> = {}): PorticoConfig {
  return Object.assign(new PorticoConfig(), { JWT_SECRET: SECRET }, overrides);
}

/** A raw Node request, as Express and the upgrade path both receive it. */
export function request(url: string, headers: Record<string, string> = {}): AuthenticatedRequest {
  const req: AuthenticatedRequest = new IncomingMessage(new Socket());
  req.url = url;
  req.headers = headers;
  return req;
}

/** The execution context Nest builds for an HTTP call to `Class.prototype[method]`. */
export function httpContext<T extends object>(
  req: AuthenticatedRequest,
  controller: new () => T,
  method: keyof T & string,
): ExecutionContext {
  const handler = controller.prototype[method] as () => void;
  return new ExecutionContextHost(
    [req, new ServerResponse(req), () => undefined],
    controller,
    handler,
  );
}

/** Status and body of the HttpException a guard threw (the body the client would get). */
export async function refusal(
  attempt: () => Promise<unknown> | unknown,
): Promise<{ status: number; body: unknown }> {
  try {
    await attempt();
  } catch (err) {
    if (err instanceof HttpException) return { status: err.getStatus(), body: err.getResponse() };
    throw err;
  }
  throw new Error('expected the guard to refuse');
}
