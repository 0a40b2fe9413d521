import { INestApplication, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { json } from 'express';
import { Logger } from 'nestjs-pino';

import type { NextFunction, Request, Response } from 'express';

import { AppModule } from './app.module';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { PorticoConfig } from './config/portico-config';

const RPC_PATH = /^\/api\/plugins\/[^/]+\/rpc(\/|$)/;

/** Builds the configured application without listening; shared by main.ts and the e2e tests. */
export async function createApp(config?: PorticoConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(Logger));
  // Bodies are parsed for the management API only; RPC bodies stream through untouched.
  const parseJson = json({ limit: '1mb' });
  app.use((req: Request, res: Response, next: NextFunction) =>
    RPC_PATH.test(req.path) ? next() : parseJson(req, res, next),
  );
  app.disable('x-powered-by');
  app.set('etag', false);
  app.useGlobalPipes(
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }),
  );
  app.useGlobalFilters(new HttpExceptionFilter());
  app.enableShutdownHooks();
  return app;
}
