import type { IncomingMessage } from 'node:http';

import { Controller, Get, HttpCode, Inject, Logger, Post, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';

import { Public } from '../public.decorator';
import { SignInError, SignInService } from './sign-in.service';
import type { SignInAnswer } from './sign-in.service';

/** Injection token: the SignInService, or null when OIDC_ISSUER is not set. */
export const SIGN_IN = Symbol('SIGN_IN');

/**
 * Single sign-on routes (docs/operations.md, "Single sign-on"; statuses in
 * docs/plugin-contract.md §3). All public: they work from the session cookie, not a token.
 * Browser pages (login, callback) answer redirects or a short HTML page; the console's calls
 * (session, token, logout) answer JSON.
 */
@Controller('api/auth')
export class AuthController {
  private readonly logger = new Logger('SingleSignOn');

  public constructor(@Inject(SIGN_IN) private readonly signIn: SignInService | null) {}

  /** Whether single sign-on is on and this browser is signed in. */
  @Public()
  @Get('session')
  public async session(@Req() req: IncomingMessage): Promise<{
    oidc: boolean;
    signedIn: boolean;
    loginUrl?: string;
  }> {
    if (this.signIn === null) return { oidc: false, signedIn: false };
    return { oidc: true, loginUrl: '/api/auth/login', ...(await this.signIn.describe(req)) };
  }

  /** Starts a sign-in: 302 to the provider. */
  @Public()
  @Get('login')
  public async login(
    @Req() req: IncomingMessage,
    @Res() res: Response,
    @Query('returnTo') returnTo?: unknown,
  ): Promise<void> {
    const signIn = this.enabled();
    try {
      if (returnTo !== undefined && typeof returnTo !== 'string')
        throw new SignInError(400, 'returnTo must be given once', 'returnTo repeated');
      const answer = await signIn.beginLogin(req, returnTo);
      this.redirect(res, answer);
    } catch (err) {
      this.page(res, err, 'sign_in_refused');
    }
  }

  /** Where the provider sends the browser back: 303 to `returnTo` with a new session. */
  @Public()
  @Get('callback')
  public async callback(@Req() req: IncomingMessage, @Res() res: Response): Promise<void> {
    const signIn = this.enabled();
    try {
      this.redirect(res, await signIn.finishLogin(req));
    } catch (err) {
      if (err instanceof SignInError) signIn.countRefusal(err.getStatus());
      this.page(res, err, 'sign_in_failed', signIn.clearLoginCookie());
    }
  }

  /** A fresh Portico token for the session (X-CSRF-Token required). */
  @Public()
  @Post('token')
  @HttpCode(200)
  public async token(
    @Req() req: IncomingMessage,
    @Res({ passthrough: true }) res: Response,
  ): Promise<unknown> {
    const signIn = this.enabled();
    try {
      return this.json(res, await signIn.issueToken(req));
    } catch (err) {
      if (err instanceof SignInError && err.getStatus() === 401)
        res.setHeader('Set-Cookie', signIn.clearedCookies());
      throw err;
    }
  }

  /** Signs out: `{ redirect }` is where to send the browser next (the provider's logout page). */
  @Public()
  @Post('logout')
  @HttpCode(200)
  public async logout(
    @Req() req: IncomingMessage,
    @Res({ passthrough: true }) res: Response,
  ): Promise<unknown> {
    return this.json(res, await this.enabled().logout(req));
  }

  private enabled(): SignInService {
    if (this.signIn === null) throw new SignInNotConfigured();
    return this.signIn;
  }

  private redirect(res: Response, answer: SignInAnswer<string>): void {
    res.setHeader('Set-Cookie', answer.cookies);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.redirect(303, answer.value);
  }

  private json<T>(res: Response, answer: SignInAnswer<T>): T {
    if (answer.cookies.length > 0) res.setHeader('Set-Cookie', answer.cookies);
    res.setHeader('Cache-Control', 'no-store');
    return answer.value;
  }

  /** A refusal a person sees in their browser: a short page with a way back. Logged once. */
  private page(res: Response, err: unknown, event: string, cookies: string[] = []): void {
    if (!(err instanceof SignInError)) throw err;
    this.logger.warn({ event, status: err.getStatus(), reason: err.reason });
    if (cookies.length > 0) res.setHeader('Set-Cookie', cookies);
    res
      .status(err.getStatus())
      .setHeader('Content-Type', 'text/html; charset=utf-8')
      .setHeader('Cache-Control', 'no-store')
      .setHeader('X-Content-Type-Options', 'nosniff')
      .setHeader(
        'Content-Security-Policy',
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
      )
      .send(errorPage(err.message));
  }
}

/** 404 for every sign-in route while OIDC_ISSUER is unset. */
class SignInNotConfigured extends SignInError {
  public constructor() {
    super(404, 'single sign-on is not configured (OIDC_ISSUER is not set)');
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorPage(message: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in failed · Portico</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
a{color:#0969da}</style></head>
<body><main><h1>Sign-in failed</h1><p data-testid="sign-in-error">${escapeHtml(message)}</p>
<p><a href="/api/auth/login">Sign in again</a> · <a href="/">Back to Portico</a></p></main></body></html>
`;
}
