/**
 * What the terminal does when its socket closes, by close code (docs/plugin-contract.md §4 and
 * §8 for the codes Portico sends; 1000 comes from this plugin's server when the shell exits).
 */
type CloseKind =
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

export type CloseAction = CloseKind & {
  /**
   * Whether the session may still run on the server, so that the next connection asks to
   * re-attach to it. False when it certainly ended: the shell exited (1000), the plugin
   * restarted (1012: the new process knows no session), access ended (4403).
   */
  readonly sessionMayLive: boolean;
};

export function closeAction(code: number, reason: string): CloseAction {
  switch (code) {
    case 1000:
      return { kind: 'exited', sessionMayLive: false };
    case 1012: // the plugin restarts: its sessions ended with the old process
      return { kind: 'retry', sessionMayLive: false };
    case 1001: // Portico or the plugin is shutting down
    case 1006: // the connection dropped, or the upgrade was refused (401/403 before the 101)
    case 4503: // the plugin is not running yet
    case 4504: // the plugin did not answer in time
      return { kind: 'retry', sessionMayLive: true };
    case 4401:
      return { kind: 'reauthenticate', sessionMayLive: true };
    case 4403:
      return {
        kind: 'final',
        message: 'You do not have access to the terminal (it needs the admin or terminal role).',
        sessionMayLive: false,
      };
    case 4404:
      return {
        kind: 'final',
        message: 'The terminal plugin is not installed.',
        sessionMayLive: false,
      };
    case 4409: // this session was attached from somewhere else (another tab): no tug of war
      return {
        kind: 'manual',
        message: 'This session was opened in another tab or window.',
        sessionMayLive: true,
      };
    default:
      return {
        kind: 'manual',
        message: `The connection closed (code ${code}${reason ? `: ${reason}` : ''}).`,
        sessionMayLive: true,
      };
  }
}
