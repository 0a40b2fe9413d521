import { h } from './dom';

export type MessageKind = 'info' | 'success' | 'error';

/**
 * The one place the console tells the user what happened (sign-in refusals, expired sessions,
 * the live connection). A polite live region: screen readers read each new message.
 */
export class MessageArea {
  public readonly element: HTMLElement;
  private readonly text: HTMLElement;

  public constructor() {
    this.text = h('p', { class: 'message-text', 'data-testid': 'message' });
    const dismiss = h('button', { type: 'button', class: 'message-dismiss quiet' }, 'Dismiss');
    dismiss.addEventListener('click', () => this.clear());
    this.element = h(
      'div',
      { class: 'message', role: 'status', 'aria-live': 'polite', hidden: true },
      this.text,
      dismiss,
    );
  }

  public show(text: string, kind: MessageKind = 'info'): void {
    this.text.textContent = text;
    this.element.dataset.kind = kind;
    this.element.hidden = false;
  }

  /** Clears the area, or only the given message if it is still the one shown. */
  public clear(only?: string): void {
    if (only !== undefined && this.text.textContent !== only) return;
    this.text.textContent = '';
    this.element.hidden = true;
  }

  public get current(): string {
    return this.text.textContent ?? '';
  }
}
