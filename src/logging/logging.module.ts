import { IncomingMessage } from 'node:http';

import { MiddlewareConsumer, Module, NestModule, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { Options, pinoHttp } from 'pino-http';

import { PorticoConfig } from '../config/portico-config';
import { redactUrl } from './redact-url';

/** One set of options for the application logger and the request logger. */
function pinoOptions(config: PorticoConfig): Options {
  return {
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
    // Probes and scrapes come every few seconds from every kubelet and Prometheus: at info they
    // would be most of the log. Logged at debug, like the rest of a quiet host's chatter.
    customLogLevel: (req: IncomingMessage) => (isProbe(req) ? 'debug' : 'info'),
  };
}

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

function isProbe(req: IncomingMessage): boolean {
  return req.method === 'GET' && PROBE_PATHS.has((req.url ?? '').split('?')[0]);
}

/**
 * Structured JSON logs (pino); credentials are redacted from every request line.
 *
 * nestjs-pino provides the application logger; its own request middleware is switched off
 * (`forRoutes: []`) and plain pino-http logs requests instead. nestjs-pino's middleware runs every
 * request inside an AsyncLocalStorage, which on Node 20 turns async hooks on for the whole
 * process from the first request on, and every socket write of the WebSocket relay then pays for
 * them (about 5 µs per round trip in `npm run bench`'s latency scenario). What that drops: lines
 * logged by application code during a request no longer carry the request's id.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [PorticoConfig],
      useFactory: (config: PorticoConfig) => ({ pinoHttp: pinoOptions(config), forRoutes: [] }),
    }),
  ],
})
export class LoggingModule implements NestModule {
  public constructor(private readonly config: PorticoConfig) {}

  public configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(pinoHttp(pinoOptions(this.config)))
      .forRoutes({ path: '*', method: RequestMethod.ALL });
  }
}
