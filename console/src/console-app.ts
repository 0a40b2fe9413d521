import { ApiClient, ApiError, describeError } from './api-client';
import { ConsoleView } from './console-view';
import { MessageArea } from './message-area';
import { SignInView } from './sign-in-view';
import type { PluginSocketEvent } from './socket-observer';
import { SessionEndedError, SsoSession, ssoStatus } from './sso-session';
import type { SsoStatus } from './sso-session';
import { applyTheme, currentTheme, initialTheme } from './theme';
import { clearToken, readToken, TOKEN_STORAGE_KEY } from './token-store';
import type { Me } from './types';

export const SESSION_EXPIRED = 'Your session has expired — sign in again.';
export const SESSION_ENDED = 'Your session has ended — sign in again.';
/** The close code Portico uses when a socket's token expires (docs/plugin-contract.md §4). */
const TOKEN_EXPIRED = 4401;

/** Switches between sign-in and the console, and ends sessions (sign-out, expiry). */
export class ConsoleApp {
  private readonly messages = new MessageArea();
  private view: ConsoleView | null = null;
  /** What `/api/auth/session` said at start: whether to offer single sign-on. */
  private sso: SsoStatus = { oidc: false, signedIn: false };
  /** Set while signed in through single sign-on: it keeps the token fresh. */
  private session: SsoSession | null = null;

  public constructor(private readonly root: HTMLElement) {
    applyTheme(initialTheme());
    // Signing out in another window signs this one out too (the stored token is gone).
    window.addEventListener('storage', (event) => {
      if (event.key === TOKEN_STORAGE_KEY && event.newValue === null && this.view !== null) {
        this.end('You signed out in another window.', 'info');
      }
    });
  }

  /**
   * Signed in through single sign-on: a fresh token from the session. Else a stored token is
   * checked; without one (or a refused one) the sign-in page shows.
   */
  public async start(): Promise<void> {
    this.sso = await ssoStatus();
    if (this.sso.signedIn) {
      const session = this.startSession();
      try {
        this.showConsole(await session.renew());
        return;
      } catch (error) {
        if (error instanceof SessionEndedError) return; // the sign-in page is showing
        session.stop();
        this.session = null;
        this.showSignIn(
          `Portico could not be reached: ${describeError(error)} Reload to try again.`,
        );
        return;
      }
    }
    const token = readToken();
    if (token === null) {
      this.showSignIn();
      return;
    }
    try {
      this.showConsole(await ApiClient.validate(token));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        clearToken();
        this.showSignIn(SESSION_EXPIRED);
      } else {
        this.showSignIn(
          `Portico could not be reached: ${describeError(error)} Reload to try again.`,
        );
      }
    }
  }

  /**
   * Routes what the socket observer saw to the console's tabs. A plugin socket closed because
   * its token expired gets a fresh token stored at once (single sign-on), which the plugin's
   * own reconnect then reads.
   */
  public pluginSocket(event: PluginSocketEvent): void {
    if (event.type === 'close' && event.code === TOKEN_EXPIRED) this.session?.renewSoon();
    this.view?.pluginSocket(event);
  }

  private startSession(): SsoSession {
    this.session?.stop();
    const session = new SsoSession(() => {
      if (this.session !== session) return;
      this.session = null;
      if (this.view !== null) this.end(SESSION_ENDED);
      else {
        clearToken();
        this.showSignIn(SESSION_ENDED);
      }
    });
    this.session = session;
    return session;
  }

  /**
   * A request or socket was refused with 401/4401. Signed in through single sign-on, a new
   * token is fetched (the session ends only if Portico says so); otherwise the session is over.
   */
  private tokenRefused(view: ConsoleView): void {
    if (this.view !== view) return;
    if (this.session === null) {
      this.end(SESSION_EXPIRED);
      return;
    }
    this.session.renewSoon();
  }

  private showSignIn(message?: string, kind: 'info' | 'error' = 'error'): void {
    const view = new SignInView(this.messages, (me) => this.showConsole(me), this.sso);
    this.root.replaceChildren(view.element);
    if (message === undefined) this.messages.clear();
    else this.messages.show(message, kind);
    document.title = 'Sign in · Portico';
    view.focus();
  }

  private showConsole(me: Me): void {
    const view: ConsoleView = new ConsoleView({
      me,
      theme: currentTheme(),
      messages: this.messages,
      signOut: () => void this.signOut(),
      sessionExpired: () => this.tokenRefused(view),
      renewToken: () => this.renewForSocket(),
    });
    this.view = view;
    this.messages.clear();
    this.root.replaceChildren(view.element);
    document.title = 'Portico';
    view.start();
  }

  /** A fresh token for a socket closed with 4401: false when there is none to be had. */
  private async renewForSocket(): Promise<boolean> {
    if (this.session === null) return false;
    try {
      await this.session.renew();
      return true;
    } catch (error) {
      return !(error instanceof SessionEndedError);
    }
  }

  /**
   * Signs out. With single sign-on the session ends at Portico, then the browser goes to the
   * provider's sign-out page, which comes back to the console.
   */
  private async signOut(): Promise<void> {
    const session = this.session;
    if (session === null) {
      this.end('You are signed out.', 'info');
      return;
    }
    this.session = null;
    const redirect = await session.signOut();
    this.end('You are signed out.', 'info');
    if (redirect !== '/') window.location.assign(redirect);
  }

  /** Ends the session: every plugin unmounted, sockets closed, token and cookie cleared. */
  private end(message: string, kind: 'info' | 'error' = 'error'): void {
    this.session?.stop();
    this.session = null;
    this.view?.destroy();
    this.view = null;
    clearToken();
    this.showSignIn(message, kind);
  }
}
