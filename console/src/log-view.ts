import { h } from './dom';
import type { LogLine } from './types';

/** Lines kept on screen; older ones are dropped as new ones arrive. */
export const MAX_LOG_LINES = 500;
/** How close to the bottom (px) still counts as "at the bottom" for autoscroll. */
const BOTTOM_SLACK_PX = 24;

/**
 * A plugin's output tail: bounded, following new lines while the reader is at the bottom and
 * holding still once they scroll up, until they jump back to the latest line.
 */
export class LogView {
  public readonly element: HTMLElement;
  private readonly lines: HTMLElement;
  private readonly jump: HTMLButtonElement;
  private following = true;
  private lastTime = -Infinity;

  public constructor(label: string) {
    this.lines = h('div', {
      class: 'log-lines',
      role: 'log',
      'aria-label': label,
      tabindex: 0,
      'data-testid': 'logs',
    });
    this.jump = h(
      'button',
      { type: 'button', class: 'log-jump', hidden: true, 'data-action': 'follow-logs' },
      'Autoscroll paused — jump to the latest line',
    );
    this.jump.addEventListener('click', () => this.follow());
    this.lines.addEventListener('scroll', () => {
      const atBottom =
        this.lines.scrollTop + this.lines.clientHeight >= this.lines.scrollHeight - BOTTOM_SLACK_PX;
      if (atBottom !== this.following) {
        this.following = atBottom;
        this.jump.hidden = atBottom;
      }
    });
    this.element = h('div', { class: 'log-view' }, this.lines, this.jump);
  }

  /** Replaces the content with an initial tail (`GET …/logs`). */
  public reset(lines: readonly LogLine[]): void {
    this.lines.replaceChildren();
    this.lastTime = -Infinity;
    this.append(lines);
  }

  public append(lines: readonly LogLine[]): void {
    if (lines.length === 0) return;
    const fragment = document.createDocumentFragment();
    for (const line of lines.slice(-MAX_LOG_LINES)) {
      fragment.appendChild(renderLine(line));
      this.lastTime = Math.max(this.lastTime, line.time);
    }
    this.lines.appendChild(fragment);
    while (this.lines.childElementCount > MAX_LOG_LINES) this.lines.firstElementChild?.remove();
    if (this.following) this.lines.scrollTop = this.lines.scrollHeight;
  }

  /** Time of the newest line shown: live lines up to it already came with the initial tail. */
  public get newest(): number {
    return this.lastTime;
  }

  public showNote(text: string): void {
    this.lines.replaceChildren(h('div', { class: 'log-note' }, text));
  }

  private follow(): void {
    this.following = true;
    this.jump.hidden = true;
    this.lines.scrollTop = this.lines.scrollHeight;
  }
}

function renderLine(line: LogLine): HTMLElement {
  const time = new Date(line.time);
  const stamp = Number.isNaN(time.getTime()) ? '' : time.toLocaleTimeString();
  return h(
    'div',
    { class: `log-line stream-${line.stream.replace(/[^a-z]/gi, '')}` },
    h('span', { class: 'log-time' }, stamp),
    h('span', { class: 'log-stream' }, line.stream),
    h('span', { class: 'log-text' }, line.line),
  );
}
