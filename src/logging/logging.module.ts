import { IncomingMessage } from 'node:http';

import { Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';

import { PorticoConfig } from '../config/portico-config';
import { redactUrl } from './redact-url';

/** Structured JSON logs (pino); credentials are redacted from every request line. */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [PorticoConfig],
      useFactory: (config: PorticoConfig) => ({
        pinoHttp: {
          level: config.LOG_LEVEL,
          redact: {
            paths: [
              'req.headers.authorization',
              'req.headers.cookie',
              'req.headers["sec-websocket-protocol"]',
              'res.headers["set-cookie"]',
            ],
            censor: '[REDACTED]',
          },
          serializers: {
            req: (req: IncomingMessage & { id?: unknown }) => ({
              id: req.id,
              method: req.method,
              url: redactUrl(req.url ?? ''),
            }),
          },
          autoLogging: { ignore: (req: IncomingMessage) => req.url === '/healthz' },
        },
      }),
    }),
  ],
})
export class LoggingModule {}
