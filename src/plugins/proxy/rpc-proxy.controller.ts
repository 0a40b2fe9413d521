import { Agent, request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream';

import { All, Controller, Logger, OnApplicationShutdown, Param, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';

import { CurrentUser } from '../../auth/current-user.decorator';
import type { Principal } from '../../auth/principal';
import { sendError, sendDomainError } from '../../common/http-exception.filter';
import { PorticoConfig } from '../../config/portico-config';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { PluginIdentityService } from '../secrets/plugin-identity.service';
import { PluginSecretsService } from '../secrets/plugin-secrets.service';
import {
  bodyFraming,
  forwardableHeaders,
  forwardingHeaders,
  isHopByHopResponseHeader,
} from './forwarded-headers';
import { PluginUpstreams } from './plugin-upstreams';
import { PLUGINS_API, RPC_ROUTE, rpcUpstreamPath } from './rpc-path';

/** Answered by Portico itself (Node's server sends `100 Continue`), so not forwarded. */
const RPC_OMIT: ReadonlySet<string> = new Set(['expect']);

/**
 * `ALL /api/plugins/:name/rpc/*path` (docs/plugin-contract.md §3): a streaming HTTP proxy to the plugin's
 * server. Bodies are piped both ways and never buffered; status, headers and body of the
 * plugin's answer are passed back as they are.
 */
@Controller(PLUGINS_API)
export class RpcProxyController implements OnApplicationShutdown {
  private readonly logger = new Logger(RpcProxyController.name);
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32 });

  public constructor(
    private readonly config: PorticoConfig,
    private readonly upstreams: PluginUpstreams,
    private readonly identity: PluginIdentityService,
    private readonly secrets: PluginSecretsService,
    private readonly metrics: PorticoMetrics,
  ) {}

  public onApplicationShutdown(): void {
    this.agent.destroy();
  }

  @All(RPC_ROUTE)
  public proxy(
    @Param('name') name: string,
    @CurrentUser() user: Principal,
    @Req() req: Request,
    @Res() res: Response,
  ): void {
    const path = rpcUpstreamPath(req.originalUrl, name);
    if (path === undefined) {
      sendError(res, 404, 'no such route');
      return;
    }
    const framing = bodyFraming(req.headers);
    if (framing === undefined) {
      // The rest of this connection can't be trusted to be where the client says it is.
      this.logger.warn({ plugin: name, event: 'rpc_refused', reason: 'ambiguous framing' });
      res.setHeader('Connection', 'close');
      sendError(res, 400, 'ambiguous request framing (Content-Length / Transfer-Encoding)');
      return;
    }
    const target = this.upstreams.upstream(name, user);
    const headers = forwardableHeaders(
      req.headers,
      [
        forwardingHeaders(req),
        this.identity.headersFor(name, user),
        // For plugins written before secrets came as environment variables (docs/plugin-contract.md §7).
        this.secrets.headersFor(name),
      ],
      RPC_OMIT,
    );
    // The body is framed as Portico decides, never as the client's headers might be read.
    if (framing.kind === 'length') headers['content-length'] = String(framing.length);
    else if (framing.kind === 'chunked') headers['transfer-encoding'] = 'chunked';

    const upstream = request({
      host: '127.0.0.1',
      port: target.port,
      method: req.method,
      path,
      headers,
      agent: this.agent,
    });
    const timer = setTimeout(() => {
      fail(
        new PluginException(PluginExceptionCode.UPSTREAM_TIMEOUT, 'plugin did not answer in time'),
      );
    }, this.config.RPC_TIMEOUT_MS);
    const fail = (err: PluginException): void => {
      clearTimeout(timer);
      upstream.destroy();
      this.metrics.rpcRequests.inc({
        plugin: name,
        status: String(err.httpStatus),
      });
      if (res.headersSent) res.destroy();
      else {
        this.logger.warn({ plugin: name, event: 'rpc_failed', reason: err.message });
        sendDomainError(res, err);
      }
    };

    upstream.on('response', (answer: IncomingMessage) => {
      clearTimeout(timer);
      this.metrics.rpcRequests.inc({
        plugin: name,
        status: `${Math.floor((answer.statusCode ?? 502) / 100)}xx`,
      });
      const out: Record<string, string | string[]> = {};
      for (const [key, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !isHopByHopResponseHeader(key)) out[key] = value;
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      pipeline(answer, res, () => undefined);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || !res.headersSent) {
        fail(
          new PluginException(
            PluginExceptionCode.UPSTREAM_REFUSED,
            `plugin request failed: ${err.code ?? err.message}`,
          ),
        );
      } else res.destroy();
    });
    // A client that goes away takes its upstream request with it.
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.writableFinished) upstream.destroy();
    });
    if (framing.kind === 'none') {
      req.resume();
      upstream.end();
    } else pipeline(req, upstream, () => undefined);
  }
}
