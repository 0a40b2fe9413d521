import type { IncomingMessage } from 'node:http';

import { CanActivate, ExecutionContext, Injectable, Logger, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants';
import { Reflector } from '@nestjs/core';

import { PorticoConfig } from '../config/portico-config';
import { redactUrl } from '../logging/redact-url';
import { AuthException, AuthExceptionCode } from './auth.exception';
import { extractCredential } from './credential-extractor';
import { CROSS_SITE_REFUSED, isAmbientCredential, originVerdict } from './origin-policy';
import { IS_PUBLIC } from './public.decorator';

/** Methods that must not change state (RFC 9110 §9.2.1), so a cross-site one does no harm. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Longest piece of a client header copied into a log line. */
const LOGGED_HEADER_CHARS = 200;

/**
 * Global guard, runs after JwtAuthGuard: refuses cross-site request forgery
 * (docs/plugin-contract.md §5).
 * A request authenticated by an ambient credential (cookie, `?token=`) that may change state
 * needs a first-party Origin (origin-policy.ts); otherwise 403 "cross-site request refused".
 * "May change state" means an unsafe method, or any method on a route that takes every method
 * (`@All`, the RPC proxy): what a plugin does with a GET is the plugin's business.
 */
@Injectable()
export class CrossSiteGuard implements CanActivate {
  private readonly logger = new Logger(CrossSiteGuard.name);

  public constructor(
    private readonly reflector: Reflector,
    private readonly config: PorticoConfig,
  ) {}

  public canActivate(context: ExecutionContext): boolean {
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic === true) return true;
    const req = context.switchToHttp().getRequest<IncomingMessage>();
    const credential = extractCredential(req);
    if (credential === undefined || !isAmbientCredential(credential.source)) return true;
    if (!this.mayChangeState(req, context)) return true;
    const verdict = originVerdict(req.headers, this.config.ALLOWED_ORIGINS);
    if (verdict.allowed) return true;
    this.logger.warn({
      event: 'cross_site_refused',
      reason: verdict.reason,
      method: req.method,
      url: redactUrl(req.url ?? '').slice(0, LOGGED_HEADER_CHARS),
      credential: credential.source,
      origin: req.headers.origin?.slice(0, LOGGED_HEADER_CHARS),
      fetchSite: headerText(req.headers['sec-fetch-site']),
    });
    throw new AuthException(
      AuthExceptionCode.CROSS_SITE_REQUEST,
      CROSS_SITE_REFUSED,
    ).toHttpException();
  }

  private mayChangeState(req: IncomingMessage, context: ExecutionContext): boolean {
    // No method at all is not something to wave through.
    if (req.method === undefined || !SAFE_METHODS.has(req.method.toUpperCase())) return true;
    return (
      this.reflector.get<RequestMethod | undefined>(METHOD_METADATA, context.getHandler()) ===
      RequestMethod.ALL
    );
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value.join(',') : value;
  return text?.slice(0, LOGGED_HEADER_CHARS);
}
