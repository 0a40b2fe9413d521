import xtermCss from '@xterm/xterm/css/xterm.css';

/** Layout of the element that holds the terminal; the container's size is the console's. */
const OWN_CSS = `
.portico-terminal { box-sizing: border-box; width: 100%; height: 100%; min-height: 240px; padding: 4px; }
.portico-terminal .xterm { height: 100%; }
.portico-terminal .xterm .xterm-viewport { background-color: transparent; }
`;

let style: HTMLStyleElement | undefined;
let users = 0;

/** Adds the terminal's style sheet to the page; shared by every mounted terminal. */
export function acquireStyles(document: Document): void {
  users += 1;
  if (style?.isConnected) return;
  style = document.createElement('style');
  style.dataset.portico = 'web-terminal';
  style.textContent = xtermCss + OWN_CSS;
  document.head.appendChild(style);
}

/** Removes the style sheet once the last terminal is gone. */
export function releaseStyles(): void {
  users = Math.max(0, users - 1);
  if (users > 0) return;
  style?.remove();
  style = undefined;
}
