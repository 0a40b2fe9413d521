/**
 * What the terminal does when its socket closes, by close code (docs/plugin-contract.md §4 and
 * §8 for the codes Portico sends; 1000 comes from this plugin's server when the shell exits).
 */
export type CloseAction =
  /** The shell ended: say so, start a new session when the user presses Enter. */
  | { readonly kind: 'exited' }
  /** Passing trouble (restart, drain, network): reconnect by itself after a backoff. */
  | { readonly kind: 'retry' }
  /** The token expired or was refused: read it again (the console refreshes it) and reconnect. */
  | { readonly kind: 'reauthenticate' }
  /** Nothing a retry can fix. */
  | { readonly kind: 'final'; readonly message: string }
  /** Anything else: explain, reconnect when the user presses Enter. */
  | { readonly kind: 'manual'; readonly message: string };

export function closeAction(code: number, reason: string): CloseAction {
  switch (code) {
    case 1000:
      return { kind: 'exited' };
    case 1001: // Portico or the plugin is shutting down
    case 1006: // the connection dropped, or the upgrade was refused (401/403 before the 101)
    case 1012: // the plugin restarts
    case 4503: // the plugin is not running yet
    case 4504: // the plugin did not answer in time
      return { kind: 'retry' };
    case 4401:
      return { kind: 'reauthenticate' };
    case 4403:
      return { kind: 'final', message: 'You no longer have access to the terminal.' };
    case 4404:
      return { kind: 'final', message: 'The terminal plugin is not installed.' };
    default:
      return {
        kind: 'manual',
        message: `The connection closed (code ${code}${reason ? `: ${reason}` : ''}).`,
      };
  }
}
