'use strict';
// The sessions a client may re-attach to, by id, and the bounds on the detached ones
// (README.md, "Sessions").
//
// An id is only ever answered for the user who started its session: for anyone else it is
// "unknown", exactly as an id that was never handed out, so nobody learns whether another
// user's session exists.

/** How many ended sessions are remembered, so that their own user hears "expired". */
const REMEMBERED_ENDED = 1024;

class SessionRegistry {
  /**
   * @param {{ maxDetachedPerUser: number, maxDetached: number }} limits
   *   beyond either, the session detached longest ago is ended
   */
  constructor(limits) {
    this.limits = limits;
    /** @type {Map<string, import('./terminal-session').TerminalSession>} live sessions by id */
    this.live = new Map();
    /** @type {Map<string, string>} ended sessions' ids → their user, oldest first */
    this.ended = new Map();
  }

  /** @param {import('./terminal-session').TerminalSession} session */
  add(session) {
    this.live.set(session.id, session);
  }

  /**
   * The live session `id` when `user` started it, else why there is none: `expired` when `user`
   * had such a session and it ended, `unknown` in every other case (never handed out, malformed,
   * or another user's, live or not).
   * @param {string | undefined} id
   * @param {string} user
   * @returns {{ session: import('./terminal-session').TerminalSession } | { reason: 'expired' | 'unknown' }}
   */
  claim(id, user) {
    if (id === undefined) return { reason: 'unknown' };
    const session = this.live.get(id);
    if (session !== undefined && !session.ended && session.user === user) return { session };
    if (session === undefined && this.ended.get(id) === user) return { reason: 'expired' };
    return { reason: 'unknown' };
  }

  /** The session ended: its id can no longer be attached to. */
  forget(session) {
    if (!this.live.delete(session.id)) return;
    this.ended.set(session.id, session.user);
    if (this.ended.size > REMEMBERED_ENDED) this.ended.delete(this.ended.keys().next().value);
  }

  /** Sessions waiting for a client, detached longest ago first. */
  detachedSessions() {
    return [...this.live.values()]
      .filter((s) => s.detached)
      .sort((a, b) => a.detachedAt - b.detachedAt);
  }

  /**
   * `session` just detached: ends the oldest detached sessions of its user beyond
   * `maxDetachedPerUser`, then the oldest of anyone beyond `maxDetached`.
   */
  enforceLimits(session) {
    const mine = this.detachedSessions().filter((s) => s.user === session.user);
    for (const oldest of mine.slice(0, Math.max(0, mine.length - this.limits.maxDetachedPerUser)))
      oldest.end('too many detached sessions for this user');
    const all = this.detachedSessions();
    for (const oldest of all.slice(0, Math.max(0, all.length - this.limits.maxDetached)))
      oldest.end('too many detached sessions');
  }

  /** Every live session, attached or not. */
  sessions() {
    return [...this.live.values()];
  }
}

module.exports = { SessionRegistry, REMEMBERED_ENDED };
