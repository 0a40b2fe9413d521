import type { Server } from 'node:http';

import { INestApplication, Logger as NestLogger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { json } from 'express';
import { Logger } from 'nestjs-pino';

import type { NextFunction, Request, Response } from 'express';

import { AppModule } from './app.module';
import { sendError } from './common/http-exception.filter';
import { PorticoConfig } from './config/portico-config';
import { AuthenticatedWsAdapter } from './events/authenticated-ws-adapter';
import { applyHttpServerLimits } from './http/http-server-limits';
import { isRpcPath } from './plugins/proxy/rpc-path';

/** Builds the configured application without listening; shared by main.ts and the e2e tests. */
export async function createApp(config?: PorticoConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    // Nothing is logged until the pino logger is in place: Nest's own console lines would be
    // the only non-JSON output, and a failed start is reported once, by main.ts.
    logger: false,
    bodyParser: false,
    // A provider that fails (an invalid PLUGINS_CONFIG, a taken DATA_DIR) rejects this promise
    // for main.ts to report, instead of Nest's default of aborting the process with a core dump.
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  // Portico's own gateways (/api/events): authenticated before the 101, beside the plugin proxy.
  app.useWebSocketAdapter(new AuthenticatedWsAdapter(app));
  applyHttpServerLimits(
    app.getHttpServer() as Server,
    app.get(PorticoConfig),
    new NestLogger('HttpServer'),
  );
  // Bodies are parsed for the management API only; RPC bodies stream through untouched.
  const parseJson = json({ limit: '1mb' });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (isRpcPath(req.path)) {
      next();
      return;
    }
    parseJson(req, res, (err?: unknown) => (err === undefined ? next() : bodyError(res, err)));
  });
  app.disable('x-powered-by');
  app.set('etag', false);
  app.enableShutdownHooks();
  return app;
}

/**
 * The answer for a body the JSON parser refused. Never the parser's own message: it quotes the
 * body, which may be a secret value (PUT /secrets/:key).
 */
function bodyError(res: Response, err: unknown): void {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : '';
  if (type === 'entity.too.large') sendError(res, 413, 'request body is larger than 1 MiB');
  else if (type === 'encoding.unsupported' || type === 'charset.unsupported')
    sendError(res, 415, 'request body encoding is not supported');
  else sendError(res, 400, 'request body is not valid JSON');
}
