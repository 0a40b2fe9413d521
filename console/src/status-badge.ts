import { h } from './dom';
import type { PluginStatus } from './types';

/** Status word with a color class (styles.css `.badge.status-*`); the word itself carries the meaning. */
export function statusBadge(status: PluginStatus): HTMLElement {
  const badge = h('span', { class: 'badge' });
  setStatusBadge(badge, status);
  return badge;
}

export function setStatusBadge(badge: HTMLElement, status: PluginStatus): void {
  badge.className = `badge status-${statusTone(status)}`;
  badge.dataset.status = status;
  badge.textContent = status;
}

/** Four tones are enough to read at a glance: ok, busy, off, bad. */
function statusTone(status: PluginStatus): 'ok' | 'busy' | 'off' | 'bad' {
  switch (status) {
    case 'running':
      return 'ok';
    case 'starting':
    case 'restarting':
    case 'stopping':
      return 'busy';
    case 'disabled':
    case 'stopped':
      return 'off';
    default:
      return 'bad';
  }
}
