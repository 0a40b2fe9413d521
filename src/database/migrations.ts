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
];
