import { Backoff } from './backoff';
import { readToken, saveToken } from './token-store';
import type { Me } from './types';

/** `GET /api/auth/session`: whether single sign-on is on, and whether this browser is in. */
export interface SsoStatus {
  readonly oidc: boolean;
  readonly signedIn: boolean;
  readonly loginUrl?: string;
}

/** The session ended (signed out elsewhere, expired, revoked at the provider): sign in again. */
export class SessionEndedError extends Error {
  public constructor() {
    super('Your session has ended — sign in again.');
    this.name = 'SessionEndedError';
  }
}

const CSRF_COOKIE = 'portico_csrf';
const CSRF_HEADER = 'X-CSRF-Token';
/** A new token is fetched when this share of the current one's lifetime has passed. */
const REFRESH_AT = 0.75;
/** Never sooner than this after the last fetch (a very short lifetime, a clock off). */
const MIN_REFRESH_MS = 2_000;

/** Asks Portico whether single sign-on is on; a failure counts as "off" (paste a token). */
export async function ssoStatus(): Promise<SsoStatus> {
  try {
    const response = await fetch('/api/auth/session', {
      headers: { accept: 'application/json' },
      credentials: 'same-origin',
    });
    if (!response.ok) return { oidc: false, signedIn: false };
    return (await response.json()) as SsoStatus;
  } catch {
    return { oidc: false, signedIn: false };
  }
}

/** Where the sign-in button sends the browser: the provider, then back to this page. */
export function loginUrl(status: SsoStatus): string {
  const back = `${location.pathname}${location.search}${location.hash}`;
  return `${status.loginUrl ?? '/api/auth/login'}?returnTo=${encodeURIComponent(back)}`;
}

/**
 * A browser signed in through single sign-on: short-lived Portico tokens from
 * `POST /api/auth/token`, kept fresh in `localStorage['auth-token']` and the `portico_token`
 * cookie (where CloudCLI plugin frontends read them) before they expire, when the page comes
 * back to the foreground, and at once when a socket is closed with 4401.
 */
export class SsoSession {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<Me> | undefined;
  private expiresAt = 0;
  private stopped = false;
  private readonly backoff = new Backoff(1_000, 30_000);
  private readonly onWake = (): void => {
    if (
      document.visibilityState === 'visible' &&
      this.expiresAt - Date.now() < this.lifetimeLeftToRefresh()
    )
      void this.renew().catch(() => undefined);
  };
  private lastLifetime = 0;

  /** `ended` runs once, when Portico says the session is over. */
  public constructor(private readonly ended: () => void) {
    document.addEventListener('visibilitychange', this.onWake);
    window.addEventListener('focus', this.onWake);
    window.addEventListener('online', this.onWake);
  }

  /**
   * A fresh token now (requests at the same moment share one). Resolves with the user; rejects
   * with SessionEndedError when the session is over (after calling `ended`), or a network error
   * (retried by itself).
   */
  public renew(): Promise<Me> {
    this.inFlight ??= this.fetchToken().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Renews without waiting: what a socket closed with 4401 asks for. */
  public renewSoon(): void {
    void this.renew().catch(() => undefined);
  }

  /** Signs out: the session ends at Portico, then at the provider (where the browser goes next). */
  public async signOut(): Promise<string> {
    this.stop();
    try {
      const response = await fetch('/api/auth/logout', {
        method: 'POST',
        headers: { accept: 'application/json', [CSRF_HEADER]: csrfToken() },
        credentials: 'same-origin',
      });
      const body = (await response.json()) as { redirect?: unknown };
      return response.ok && typeof body.redirect === 'string' ? body.redirect : '/';
    } catch {
      return '/';
    }
  }

  public stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener('visibilitychange', this.onWake);
    window.removeEventListener('focus', this.onWake);
    window.removeEventListener('online', this.onWake);
  }

  private lifetimeLeftToRefresh(): number {
    return this.lastLifetime * (1 - REFRESH_AT);
  }

  private async fetchToken(): Promise<Me> {
    clearTimeout(this.timer);
    let response: Response;
    try {
      response = await fetch('/api/auth/token', {
        method: 'POST',
        headers: { accept: 'application/json', [CSRF_HEADER]: csrfToken() },
        credentials: 'same-origin',
      });
    } catch (error) {
      this.schedule(this.backoff.next());
      throw error;
    }
    if (response.status === 401 || response.status === 403) {
      this.stop();
      this.ended();
      throw new SessionEndedError();
    }
    if (!response.ok) {
      this.schedule(this.backoff.next());
      throw new Error(`Portico answered ${response.status} for a new token.`);
    }
    const body = (await response.json()) as { token: string; expiresAt: string; user: Me };
    this.backoff.reset();
    if (body.token !== readToken()) saveToken(body.token);
    const now = Date.now();
    this.expiresAt = Date.parse(body.expiresAt);
    this.lastLifetime = Math.max(0, this.expiresAt - now);
    this.schedule(Math.max(MIN_REFRESH_MS, this.lastLifetime * REFRESH_AT));
    return body.user;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew().catch(() => undefined), delayMs);
  }
}

/** The session's CSRF token, from the cookie Portico set at sign-in (readable by this page only). */
function csrfToken(): string {
  for (const part of document.cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join('='));
  }
  return '';
}
