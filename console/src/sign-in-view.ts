import { ApiClient, ApiError, describeError } from './api-client';
import { h } from './dom';
import type { MessageArea } from './message-area';
import { loginUrl } from './sso-session';
import type { SsoStatus } from './sso-session';
import { normalizeToken, saveToken } from './token-store';
import type { Me } from './types';

/** A JWT is base64url parts and dots; anything outside printable ASCII cannot be one. */
const TOKEN_CHARACTERS = /^[\x21-\x7e]+$/;

/**
 * Sign-in: through the company's identity provider when single sign-on is on (a link to
 * `/api/auth/login`, which comes back here), or by pasting a token. A pasted token is checked
 * with `GET /api/me` before it is stored, so a refused token never reaches localStorage or the
 * cookie.
 */
export class SignInView {
  public readonly element: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly submit: HTMLButtonElement;

  private readonly sso: HTMLAnchorElement | null;

  public constructor(
    private readonly messages: MessageArea,
    private readonly signedIn: (me: Me) => void,
    sso: SsoStatus = { oidc: false, signedIn: false },
  ) {
    this.input = h('input', {
      id: 'sign-in-token',
      type: 'password',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      'aria-describedby': 'sign-in-help',
      'data-testid': 'sign-in-token',
    });
    this.submit = h(
      'button',
      { type: 'submit', class: 'primary', 'data-testid': 'sign-in-submit' },
      'Sign in',
    );
    this.sso = sso.oidc
      ? h(
          'a',
          { class: 'button primary sso', href: loginUrl(sso), 'data-testid': 'sso-sign-in' },
          'Sign in with single sign-on',
        )
      : null;
    const form = h(
      'form',
      { class: 'sign-in-form', 'aria-labelledby': 'sign-in-title' },
      h('h1', { id: 'sign-in-title' }, 'Sign in to Portico'),
      ...(this.sso !== null
        ? [this.sso, h('p', { class: 'hint or' }, 'or paste an access token')]
        : []),
      h('label', { for: 'sign-in-token' }, 'Access token'),
      this.input,
      h(
        'p',
        { id: 'sign-in-help', class: 'hint' },
        'Paste the token you were given. It stays in this browser until you sign out.',
      ),
      this.submit,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.signIn();
    });
    this.element = h(
      'main',
      { class: 'sign-in' },
      h('div', { class: 'sign-in-card' }, form, messages.element),
    );
  }

  public focus(): void {
    (this.sso ?? this.input).focus();
  }

  private async signIn(): Promise<void> {
    const token = normalizeToken(this.input.value);
    if (token === '') {
      this.refused('the field is empty. Paste a token first.');
      return;
    }
    if (!TOKEN_CHARACTERS.test(token)) {
      this.refused(
        'it contains characters a token never has (spaces or line breaks in the middle?).',
      );
      return;
    }
    this.submit.disabled = true;
    this.submit.textContent = 'Checking…';
    try {
      const me = await ApiClient.validate(token);
      saveToken(token);
      this.input.value = '';
      this.messages.clear();
      this.signedIn(me);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.refused(`${error.message}.`);
      else this.messages.show(`The token could not be checked: ${describeError(error)}`, 'error');
      this.input.focus();
    } finally {
      this.submit.disabled = false;
      this.submit.textContent = 'Sign in';
    }
  }

  private refused(why: string): void {
    this.messages.show(`That token was refused: ${why}`, 'error');
    this.input.focus();
    this.input.select();
  }
}
