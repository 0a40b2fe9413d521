import { ApiClient, ApiError, describeError } from './api-client';
import { ConsoleView } from './console-view';
import { MessageArea } from './message-area';
import { SignInView } from './sign-in-view';
import type { PluginSocketEvent } from './socket-observer';
import { applyTheme, currentTheme, initialTheme } from './theme';
import { clearToken, readToken, TOKEN_STORAGE_KEY } from './token-store';
import type { Me } from './types';

export const SESSION_EXPIRED = 'Your session has expired — sign in again.';

/** Switches between sign-in and the console, and ends sessions (sign-out, expiry). */
export class ConsoleApp {
  private readonly messages = new MessageArea();
  private view: ConsoleView | null = null;

  public constructor(private readonly root: HTMLElement) {
    applyTheme(initialTheme());
    // Signing out in another window signs this one out too (the stored token is gone).
    window.addEventListener('storage', (event) => {
      if (event.key === TOKEN_STORAGE_KEY && event.newValue === null && this.view !== null) {
        this.end('You signed out in another window.', 'info');
      }
    });
  }

  /** A stored token is checked first; without one (or a refused one) the sign-in form shows. */
  public async start(): Promise<void> {
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

  /** Routes what the socket observer saw to the console's tabs. */
  public pluginSocket(event: PluginSocketEvent): void {
    this.view?.pluginSocket(event);
  }

  private showSignIn(message?: string, kind: 'info' | 'error' = 'error'): void {
    const view = new SignInView(this.messages, (me) => this.showConsole(me));
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
      signOut: () => this.end('You are signed out.', 'info'),
      sessionExpired: () => {
        if (this.view === view) this.end(SESSION_EXPIRED);
      },
    });
    this.view = view;
    this.messages.clear();
    this.root.replaceChildren(view.element);
    document.title = 'Portico';
    view.start();
  }

  /** Ends the session: every plugin unmounted, sockets closed, token and cookie cleared. */
  private end(message: string, kind: 'info' | 'error' = 'error'): void {
    this.view?.destroy();
    this.view = null;
    clearToken();
    this.showSignIn(message, kind);
  }
}
