import { All, ConsoleLogger, Get, Logger, Post, Put } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import { BEARER_SUBPROTOCOL_PREFIX } from '../../../src/auth/credential-extractor';
import { CrossSiteGuard } from '../../../src/auth/cross-site.guard';
import { Public } from '../../../src/auth/public.decorator';
import { config, httpContext, refusal, request } from './auth-context';

class Routes {
  @Get('plugins')
  public list(): void {}

  @Post('plugins/:name/restart')
  public restart(): void {}

  @Put('plugins/:name/enable')
  public enable(): void {}

  @All(':name/rpc{/*path}')
  public rpc(): void {}

  @Public()
  @Post('open')
  public open(): void {}
}

const HOST = '127.0.0.1:8080';
const COOKIE = 'portico_token=abc.def.ghi';

function call(
  method: string,
  handler: keyof Routes,
  headers: Record<string, string>,
  url = '/api/x',
): () => boolean {
  const req = request(url, { host: HOST, ...headers });
  req.method = method;
  const guard = new CrossSiteGuard(
    new Reflector(),
    config({ ALLOWED_ORIGINS: ['https://console.example'] }),
  );
  return () => guard.canActivate(httpContext(req, Routes, handler));
}

const forbidden = {
  status: 403,
  body: { statusCode: 403, error: 'Forbidden', message: 'cross-site request refused' },
};

describe('CrossSiteGuard', () => {
  let warnings: unknown[];
  beforeEach(() => {
    warnings = [];
    Logger.overrideLogger({
      log: () => undefined,
      error: () => undefined,
      warn: (message: unknown) => warnings.push(message),
    });
  });
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  describe('cookie or ?token= on a request that may change state', () => {
    it.each([
      ['POST', 'restart', { cookie: COOKIE }],
      ['PUT', 'enable', { cookie: COOKIE }],
      ['DELETE', 'enable', { cookie: COOKIE }],
      ['PATCH', 'enable', { cookie: COOKIE }],
      ['POST', 'rpc', { cookie: COOKIE }],
      ['GET', 'rpc', { cookie: COOKIE }],
      ['HEAD', 'rpc', { cookie: COOKIE }],
      ['OPTIONS', 'rpc', { cookie: COOKIE }],
    ] as const)('%s %s with a foreign Origin → 403', async (method, handler, headers) => {
      const attempt = call(method, handler, { ...headers, origin: 'https://evil.example' });
      expect(await refusal(attempt)).toEqual(forbidden);
    });

    it('?token= with a foreign Origin → 403, logged once without the token', async () => {
      const attempt = call(
        'POST',
        'restart',
        { origin: 'https://evil.example' },
        '/x?token=SECRET',
      );
      expect(await refusal(attempt)).toEqual(forbidden);
      expect(warnings).toEqual([
        expect.objectContaining({
          event: 'cross_site_refused',
          reason: 'foreign-origin',
          method: 'POST',
          url: '/x?token=[REDACTED]',
          credential: 'query',
          origin: 'https://evil.example',
        }),
      ]);
      expect(JSON.stringify(warnings)).not.toContain('SECRET');
    });

    it.each([
      ['no Origin and no Sec-Fetch-Site', {}],
      ['Origin: null', { origin: 'null' }],
      ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
      [
        'Sec-Fetch-Site: same-site (another port shares the cookie)',
        { 'sec-fetch-site': 'same-site' },
      ],
      ['the same host on another port', { origin: 'http://127.0.0.1:3000' }],
    ])('%s → 403', async (_what, headers) => {
      expect(await refusal(call('POST', 'rpc', { cookie: COOKIE, ...headers }))).toEqual(forbidden);
    });

    it.each([
      ['the same host', { origin: `http://${HOST}` }],
      ['an origin in ALLOWED_ORIGINS', { origin: 'https://console.example' }],
      ['no Origin, Sec-Fetch-Site: same-origin', { 'sec-fetch-site': 'same-origin' }],
      ['no Origin, Sec-Fetch-Site: none (typed URL)', { 'sec-fetch-site': 'none' }],
    ])('from %s → allowed', (_what, headers) => {
      expect(call('POST', 'restart', { cookie: COOKIE, ...headers })()).toBe(true);
      expect(call('GET', 'rpc', { cookie: COOKIE, ...headers })()).toBe(true);
      expect(warnings).toEqual([]);
    });
  });

  describe('everything else passes', () => {
    it.each([
      ['Authorization: Bearer', { authorization: 'Bearer abc' }],
      [
        'the bearer subprotocol',
        { 'sec-websocket-protocol': `${BEARER_SUBPROTOCOL_PREFIX}${'x'.repeat(8)}` },
      ],
    ])('%s with a foreign Origin', (_what, headers) => {
      const evil = { ...headers, cookie: COOKIE, origin: 'https://evil.example' };
      expect(call('POST', 'restart', evil)()).toBe(true);
      expect(call('POST', 'rpc', evil)()).toBe(true);
    });

    it.each(['GET', 'HEAD', 'OPTIONS'])(
      '%s on the management API with a cookie and a foreign Origin',
      (method) => {
        expect(call(method, 'list', { cookie: COOKIE, origin: 'https://evil.example' })()).toBe(
          true,
        );
      },
    );

    it('a request without credentials (JwtAuthGuard answers it)', () => {
      expect(call('POST', 'restart', { origin: 'https://evil.example' })()).toBe(true);
    });

    it('a @Public() route', () => {
      expect(call('POST', 'open', { cookie: COOKIE, origin: 'https://evil.example' })()).toBe(true);
    });
  });
});
