import type { Pool, PoolClient } from 'pg';

import { inTransaction } from '../../database/transaction';
import { SecretCipher, SecretDecryptError } from '../../plugins/secrets/secret-cipher';
import type { SealedValue } from '../../plugins/secrets/secret-cipher';
import type { SessionStore, SignInSession } from './session-store';

/** What the error says cannot be done while the database is away (503). */
const WHAT = 'sign-in sessions';

interface SessionRow {
  sid: string;
  subject: string;
  name: string;
  roles: string[];
  csrf: string;
  sealed_tokens: SealedValue | null;
  provider_expires_at: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

interface ProviderTokens {
  idToken?: string;
  refreshToken?: string;
}

const COLUMNS =
  'sid, subject, name, roles, csrf, sealed_tokens, provider_expires_at, created_at, last_seen_at, expires_at';

/**
 * Sign-in sessions in PostgreSQL (migration 3, `portico_session`), so every replica knows every
 * session. The provider's tokens are sealed with SECRETS_KEY and bound to the row's key: a row
 * copied under another key does not open. A row that does not open (another SECRETS_KEY) is a
 * session that has ended.
 */
export class PgSessionStore implements SessionStore {
  public constructor(
    private readonly pool: Pool,
    private readonly cipher: SecretCipher,
  ) {}

  public async create(key: string, session: SignInSession): Promise<void> {
    await inTransaction(this.pool, WHAT, async (client) => {
      await client.query(
        `INSERT INTO portico_session (key, ${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [key, ...this.values(key, session)],
      );
    });
  }

  public get(key: string): Promise<SignInSession | undefined> {
    return inTransaction(this.pool, WHAT, (client) => this.read(client, key, ''));
  }

  public async touch(key: string, lastSeenAt: number): Promise<void> {
    await inTransaction(this.pool, WHAT, async (client) => {
      await client.query(
        'UPDATE portico_session SET last_seen_at = GREATEST(last_seen_at, $2) WHERE key = $1',
        [key, lastSeenAt],
      );
    });
  }

  public update(
    key: string,
    change: (session: SignInSession) => Promise<SignInSession | null>,
  ): Promise<SignInSession | null | undefined> {
    return inTransaction(this.pool, WHAT, async (client) => {
      // The row lock makes concurrent refreshes of one session (two tabs, two replicas) take
      // turns, so a rotated refresh token is never used twice.
      const session = await this.read(client, key, 'FOR UPDATE');
      if (session === undefined) return undefined;
      const next = await change(session);
      if (next === null) {
        await client.query('DELETE FROM portico_session WHERE key = $1', [key]);
        return null;
      }
      await client.query(
        `UPDATE portico_session SET (${COLUMNS}) = ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11) WHERE key = $1`,
        [key, ...this.values(key, next)],
      );
      return next;
    });
  }

  public delete(key: string): Promise<SignInSession | undefined> {
    return inTransaction(this.pool, WHAT, async (client) => {
      const session = await this.read(client, key, 'FOR UPDATE');
      await client.query('DELETE FROM portico_session WHERE key = $1', [key]);
      return session;
    });
  }

  public async sweep(now: number, idleMs: number): Promise<void> {
    await inTransaction(this.pool, WHAT, async (client) => {
      await client.query(
        'DELETE FROM portico_session WHERE expires_at <= $1 OR last_seen_at <= $2',
        [now, now - idleMs],
      );
    });
  }

  private async read(
    client: PoolClient,
    key: string,
    lock: '' | 'FOR UPDATE',
  ): Promise<SignInSession | undefined> {
    const { rows } = await client.query<SessionRow>(
      `SELECT ${COLUMNS} FROM portico_session WHERE key = $1 ${lock}`,
      [key],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    let tokens: ProviderTokens = {};
    if (row.sealed_tokens !== null) {
      try {
        tokens = JSON.parse(this.cipher.open(row.sealed_tokens, binding(key))) as ProviderTokens;
      } catch (err) {
        if (err instanceof SecretDecryptError) return undefined;
        throw err;
      }
    }
    return {
      sid: row.sid,
      subject: row.subject,
      name: row.name,
      roles: row.roles,
      csrf: row.csrf,
      ...(tokens.idToken !== undefined ? { idToken: tokens.idToken } : {}),
      ...(tokens.refreshToken !== undefined ? { refreshToken: tokens.refreshToken } : {}),
      ...(row.provider_expires_at !== null
        ? { providerExpiresAt: Number(row.provider_expires_at) }
        : {}),
      createdAt: Number(row.created_at),
      lastSeenAt: Number(row.last_seen_at),
      expiresAt: Number(row.expires_at),
    };
  }

  /** The row's values after its key, in COLUMNS order. */
  private values(key: string, session: SignInSession): unknown[] {
    const tokens: ProviderTokens = {
      ...(session.idToken !== undefined ? { idToken: session.idToken } : {}),
      ...(session.refreshToken !== undefined ? { refreshToken: session.refreshToken } : {}),
    };
    const sealed =
      Object.keys(tokens).length === 0
        ? null
        : this.cipher.seal(JSON.stringify(tokens), binding(key));
    return [
      session.sid,
      session.subject,
      session.name,
      [...session.roles],
      session.csrf,
      sealed === null ? null : JSON.stringify(sealed),
      session.providerExpiresAt ?? null,
      session.createdAt,
      session.lastSeenAt,
      session.expiresAt,
    ];
  }
}

/** Associated data: a sealed value opens only in the row it was written to. */
function binding(key: string): Buffer {
  return Buffer.from(`portico-session\0${key}`, 'utf8');
}
