/**
 * The database schema, as versioned migrations applied in order by `migrate` (never edited once
 * released: a change is a new migration). Kept in TypeScript rather than .sql files so that the
 * build (tsc) ships them in dist/ with nothing to copy.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'plugin state',
    sql: `
      -- Every committed change takes the next number: a replica that compares the highest one it
      -- applied with the database's knows whether it missed a change.
      CREATE SEQUENCE portico_state_generation;

      -- One row per plugin whose enable flag or access roles were ever set; a plugin without a
      -- row has the defaults (enabled, open to every user).
      CREATE TABLE portico_plugin_state (
        name        text PRIMARY KEY,
        enabled     boolean NOT NULL DEFAULT true,
        roles       text[] NOT NULL DEFAULT '{}',
        generation  bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 2,
    name: 'plugin secrets',
    sql: `
      -- Each plugin's secret values, sealed with SECRETS_KEY (AES-256-GCM, bound to plugin and
      -- key): the database never holds a plaintext value. key_id names the key that sealed the
      -- row (a hash, not the key). Changes take the same generation numbers as plugin state.
      CREATE TABLE portico_plugin_secret (
        plugin      text NOT NULL,
        key         text NOT NULL,
        key_id      text NOT NULL,
        nonce       text NOT NULL,
        ciphertext  text NOT NULL,
        tag         text NOT NULL,
        generation  bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (plugin, key)
      );
    `,
  },
  {
    version: 3,
    name: 'sign-in sessions',
    sql: `
      -- Browser sessions of single sign-on (OIDC_ISSUER), shared by every replica. key is the
      -- SHA-256 of the cookie's secret, never the secret; the provider's ID and refresh tokens
      -- are sealed with SECRETS_KEY (sealed_tokens: nonce, ciphertext, tag). Times are ms since
      -- the epoch.
      CREATE TABLE portico_session (
        key                  text PRIMARY KEY,
        sid                  text NOT NULL UNIQUE,
        subject              text NOT NULL,
        name                 text NOT NULL,
        roles                text[] NOT NULL DEFAULT '{}',
        csrf                 text NOT NULL,
        sealed_tokens        jsonb,
        provider_expires_at  bigint,
        created_at           bigint NOT NULL,
        last_seen_at         bigint NOT NULL,
        expires_at           bigint NOT NULL
      );
      CREATE INDEX portico_session_expires_at ON portico_session (expires_at);
      CREATE INDEX portico_session_last_seen_at ON portico_session (last_seen_at);
    `,
  },
];
