import { createHash, randomBytes } from 'node:crypto';

/** A browser's sign-in session (docs/operations.md, "Single sign-on"). Times in ms since the epoch. */
export interface SignInSession {
  /** Public id (`sid` in its tokens); not the cookie's secret. */
  readonly sid: string;
  readonly subject: string;
  readonly name: string;
  readonly roles: readonly string[];
  /** Compared with the `X-CSRF-Token` header (double submit, bound to the session). */
  readonly csrf: string;
  /** For RP-initiated logout (`id_token_hint`). */
  readonly idToken?: string;
  /** Kept only here, never sent to the browser; rotated on every refresh. */
  readonly refreshToken?: string;
  /** When the provider's access token runs out: the session is refreshed after it. */
  readonly providerExpiresAt?: number;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  /** The absolute end (createdAt + SESSION_MAX_AGE_MS). */
  readonly expiresAt: number;
}

/**
 * Where sessions are kept, by the SHA-256 of the cookie's secret (`key`), so a leaked store
 * holds no usable cookie. In memory for one replica, in PostgreSQL for several (DATABASE_URL).
 */
export interface SessionStore {
  create(key: string, session: SignInSession): Promise<void>;
  get(key: string): Promise<SignInSession | undefined>;
  /** Records use (the idle clock restarts). */
  touch(key: string, lastSeenAt: number): Promise<void>;
  /**
   * Runs `change` with the session while no other `update` of it runs (on any replica), and
   * keeps what it returns; `null` deletes the session. Undefined when there is no session.
   */
  update(
    key: string,
    change: (session: SignInSession) => Promise<SignInSession | null>,
  ): Promise<SignInSession | null | undefined>;
  /** Deletes and returns the session. */
  delete(key: string): Promise<SignInSession | undefined>;
  /** Deletes every session idle longer than `idleMs` or past its end. */
  sweep(now: number, idleMs: number): Promise<void>;
}

/** A new cookie secret (256 bits) and the key it is stored under. */
export function newSessionSecret(): { secret: string; key: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, key: sessionKey(secret) };
}

/** The store key of a cookie secret. */
export function sessionKey(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

/** Whether a session has ended by time: idle too long, or past its absolute end. */
export function sessionExpired(session: SignInSession, now: number, idleMs: number): boolean {
  return now >= session.expiresAt || now - session.lastSeenAt >= idleMs;
}

/** Sessions in this process: one replica; a restart signs everyone out. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, SignInSession>();
  /** The running `update` per key, so updates of one session take turns. */
  private readonly updating = new Map<string, Promise<unknown>>();

  public create(key: string, session: SignInSession): Promise<void> {
    this.sessions.set(key, session);
    return Promise.resolve();
  }

  public get(key: string): Promise<SignInSession | undefined> {
    return Promise.resolve(this.sessions.get(key));
  }

  public touch(key: string, lastSeenAt: number): Promise<void> {
    const session = this.sessions.get(key);
    if (session !== undefined) this.sessions.set(key, { ...session, lastSeenAt });
    return Promise.resolve();
  }

  public async update(
    key: string,
    change: (session: SignInSession) => Promise<SignInSession | null>,
  ): Promise<SignInSession | null | undefined> {
    const previous = this.updating.get(key) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const session = this.sessions.get(key);
        if (session === undefined) return undefined;
        const next = await change(session);
        if (next === null) this.sessions.delete(key);
        else if (this.sessions.has(key)) this.sessions.set(key, next);
        return next;
      });
    this.updating.set(key, run);
    try {
      return await run;
    } finally {
      if (this.updating.get(key) === run) this.updating.delete(key);
    }
  }

  public delete(key: string): Promise<SignInSession | undefined> {
    const session = this.sessions.get(key);
    this.sessions.delete(key);
    return Promise.resolve(session);
  }

  public sweep(now: number, idleMs: number): Promise<void> {
    for (const [key, session] of this.sessions)
      if (sessionExpired(session, now, idleMs)) this.sessions.delete(key);
    return Promise.resolve();
  }
}
