/**
 * What each WebSocket close code Portico sends means for the person looking at the console, and
 * whether the connection comes back by itself (docs/plugin-contract.md §4, "Close codes").
 * Used for the console's own events socket and for the sockets plugin frontends open.
 */
export interface CloseExplanation {
  /** What happened, as the end of "The connection closed: …". */
  readonly what: string;
  /** Whether a client following the contract reconnects. */
  readonly reconnects: boolean;
  /** What happens next, a sentence. */
  readonly next: string;
}

export const CLOSE_CODES: Readonly<Record<number, CloseExplanation>> = {
  1000: { what: 'it was closed normally', reconnects: false, next: 'Nothing more to do.' },
  1001: {
    what: 'Portico is shutting down or restarting',
    reconnects: true,
    next: 'It will reconnect when Portico is back.',
  },
  1002: {
    what: 'the page sent something that is not valid WebSocket',
    reconnects: true,
    next: 'It will reconnect after a moment; reload the page if it keeps happening.',
  },
  1006: {
    what: 'the connection was cut or refused',
    reconnects: true,
    next: 'It will reconnect after a moment.',
  },
  1009: {
    what: 'a message was larger than the plugin allows',
    reconnects: true,
    next: 'It can reconnect, but not send that message again.',
  },
  1011: {
    what: 'the plugin stopped (disabled, removed or failed)',
    reconnects: false,
    next: 'It will not reconnect by itself; check the plugin’s status.',
  },
  1012: {
    what: 'the plugin is restarting',
    reconnects: true,
    next: 'It will reconnect once the plugin is running again.',
  },
  4401: {
    what: 'your session expired',
    reconnects: false,
    next: 'It will reconnect after you sign in again.',
  },
  4403: {
    what: 'you do not have access to this plugin, or no longer',
    reconnects: false,
    next: 'It will not reconnect; ask an administrator for access.',
  },
  4404: {
    what: 'there is no such plugin',
    reconnects: false,
    next: 'It will not reconnect.',
  },
  4502: {
    what: 'the plugin refused the connection',
    reconnects: true,
    next: 'It will retry a few times, with pauses.',
  },
  4503: {
    what: 'the plugin is not running',
    reconnects: true,
    next: 'It will retry every few seconds until the plugin is running.',
  },
  4504: {
    what: 'the plugin did not answer in time',
    reconnects: true,
    next: 'It will retry, with pauses.',
  },
};

/** The explanation for a code, with a generic one for codes Portico does not send itself. */
export function explainClose(code: number): CloseExplanation {
  return (
    CLOSE_CODES[code] ?? {
      what: `it closed with code ${code}`,
      reconnects: code !== 1000,
      next: code === 1000 ? 'Nothing more to do.' : 'It may reconnect.',
    }
  );
}

/**
 * One sentence for a close: `The connection closed (4503): the plugin is not running. …`.
 * For a plugin's own socket (`pluginSocket`) reconnecting is up to the plugin's code, so the
 * sentence says how to get it back if it does not.
 */
export function describeClose(
  code: number,
  reason = '',
  subject = 'The connection',
  pluginSocket = false,
): string {
  const explanation = explainClose(code);
  const said = reason.trim() === '' ? '' : ` (“${reason.trim()}”)`;
  const fallback = pluginSocket && explanation.reconnects ? ' If it does not, use Reload.' : '';
  return `${subject} closed (${code}): ${explanation.what}${said}. ${explanation.next}${fallback}`;
}
