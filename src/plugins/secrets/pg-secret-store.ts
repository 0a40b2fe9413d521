import { Logger } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';

import { SerialQueue } from '../../common/serial-queue';
import type { DatabaseListener } from '../../database/database-listener';
import { inTransaction } from '../../database/transaction';
import { SECRET_KEY_PATTERN } from '../manifest/manifest.constants';
import { isPluginName, PluginName } from '../shared/plugin.types';
import type { SealedValue, SecretCipher } from './secret-cipher';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import {
  DecryptedSecrets,
  Entries,
  openEntries,
  SecretStore,
  SecretStoreLocation,
} from './secret-store';

/** The channel every committed secret change is announced on (payload: `{plugin, generation}`). */
export const SECRETS_CHANNEL = 'portico_secrets';

/** What a 503 says cannot be changed. */
const SECRETS = 'secrets';

interface SecretRow {
  plugin: string;
  key: string;
  key_id: string;
  nonce: string;
  ciphertext: string;
  tag: string;
}

/**
 * The encrypted secret store in PostgreSQL, shared by every replica (DATABASE_URL). Values are
 * sealed here, exactly as in the file store (SECRETS_KEY, AES-256-GCM, a fresh nonce per write,
 * bound to plugin and key), so the database only ever holds sealed values, and each row names
 * the key that sealed it. Each write is one row, committed with a generation number and
 * announced with `pg_notify` in the same transaction; every replica follows the channel on its
 * listener connection, reloads, and reports which plugins' values changed (their servers are
 * restarted). After the listener (re)connects everything is reloaded and compared, so a change
 * made while it was cut off is found. Reads keep the values last loaded when the database goes
 * away; writes get 503. Writes and reloads run one at a time, so a reload never undoes a write.
 */
export class PgSecretStore extends DecryptedSecrets implements SecretStore {
  private readonly logger = new Logger('SecretDatabase');
  private readonly queue = new SerialQueue();
  /** A reload queued behind other work and not started yet: later requests join it. */
  private reloadWaiting: Promise<PluginName[]> | undefined;

  public constructor(
    private readonly pool: Pool,
    private cipher: SecretCipher,
    /** `host:port/database`, never the credentials. */
    private readonly database: string,
    /** The replica's LISTEN connection; without it (a one-shot command) `watch` does nothing. */
    private readonly listener?: DatabaseListener,
  ) {
    super();
  }

  public get location(): SecretStoreLocation {
    return { database: this.database };
  }

  public async load(): Promise<void> {
    await this.queue.run(() => this.reload());
    if (this.corruption !== undefined) throw this.corruption;
  }

  /** The listener keeps the values current (`watch`): there is nothing to re-read here. */
  public refresh(): boolean {
    return false;
  }

  public set(plugin: PluginName, key: string, value: string): Promise<void> {
    return this.queue.run(async () => {
      this.assertUsable();
      const next = this.withValue(this.cipher, plugin, key, value);
      const sealed = next.get(plugin)?.get(key)?.sealed as SealedValue;
      await inTransaction(this.pool, SECRETS, async (client) => {
        const row = await client.query<{ generation: string }>(
          `INSERT INTO portico_plugin_secret
             (plugin, key, key_id, nonce, ciphertext, tag, generation)
             VALUES ($1, $2, $3, $4, $5, $6, nextval('portico_state_generation'))
           ON CONFLICT (plugin, key) DO UPDATE SET
             key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
             tag = EXCLUDED.tag, generation = EXCLUDED.generation, updated_at = now()
           RETURNING generation`,
          [plugin, key, this.cipher.keyId, sealed.nonce, sealed.ciphertext, sealed.tag],
        );
        await announce(client, plugin, row.rows[0].generation);
      });
      this.apply(next);
    });
  }

  public delete(plugin: PluginName, key: string): Promise<boolean> {
    return this.queue.run(async () => {
      this.assertUsable();
      const removed = await inTransaction(this.pool, SECRETS, async (client) => {
        const row = await client.query(
          'DELETE FROM portico_plugin_secret WHERE plugin = $1 AND key = $2',
          [plugin, key],
        );
        if (row.rowCount === 0) return false;
        await announce(client, plugin, await nextGeneration(client));
        return true;
      });
      if (removed) this.apply(this.without(plugin, key));
      return removed;
    });
  }

  /**
   * Re-seals every row with `cipher` in one transaction that locks the table, from the rows as
   * they are in the database (not this replica's copy), then uses it from now on. Replicas still
   * running with the old key report the store as sealed with another key until they are
   * restarted with the new one.
   */
  public rekey(cipher: SecretCipher): Promise<number> {
    return this.queue.run(async () => {
      const resealed = await inTransaction(this.pool, SECRETS, async (client) => {
        await client.query('LOCK TABLE portico_plugin_secret IN EXCLUSIVE MODE');
        this.replace(await this.readRows(client));
        this.assertUsable();
        const next = this.resealed(cipher);
        const generation = await nextGeneration(client);
        for (const [plugin, map] of next.entries) {
          for (const [key, { sealed }] of map)
            await client.query(
              `UPDATE portico_plugin_secret SET key_id = $3, nonce = $4, ciphertext = $5, tag = $6,
                 generation = $7, updated_at = now()
               WHERE plugin = $1 AND key = $2`,
              [plugin, key, cipher.keyId, sealed.nonce, sealed.ciphertext, sealed.tag, generation],
            );
          await announce(client, plugin, generation);
        }
        return next;
      });
      this.cipher = cipher;
      this.apply(resealed.entries);
      return resealed.count;
    });
  }

  public watch(onChange: (plugins: readonly PluginName[]) => void): () => void {
    if (this.listener === undefined) return () => undefined;
    return this.listener.subscribe(SECRETS_CHANNEL, () => {
      this.reloadSoon().then(
        (changed) => {
          if (changed.length > 0) onChange(changed);
        },
        (err: unknown) => {
          // The listener reconnects and asks again; until then the values last loaded serve.
          this.logger.warn({
            event: 'secrets_reload_failed',
            database: this.database,
            reason: (err as Error).message,
          });
        },
      );
    });
  }

  private reloadSoon(): Promise<PluginName[]> {
    if (this.reloadWaiting !== undefined) return this.reloadWaiting;
    const reload = this.queue.run(() => {
      this.reloadWaiting = undefined;
      return this.reload();
    });
    this.reloadWaiting = reload;
    return reload;
  }

  /** Reads every row; returns the plugins whose values (or whose store's health) changed. */
  private async reload(): Promise<PluginName[]> {
    return this.replace(await this.readRows(this.pool));
  }

  /** Every row, checked and opened; a store that can't be trusted as a whole is the error. */
  private async readRows(
    db: Pool | PoolClient,
  ): Promise<{ entries: Entries; corruption?: SecretStoreCorruptError }> {
    const result = await db.query<SecretRow>(
      'SELECT plugin, key, key_id, nonce, ciphertext, tag FROM portico_plugin_secret',
    );
    const sealed = new Map<PluginName, Map<string, SealedValue>>();
    const otherKeys = new Set<string>();
    for (const row of result.rows) {
      if (!isPluginName(row.plugin) || !SECRET_KEY_PATTERN.test(row.key))
        return {
          entries: new Map(),
          corruption: new SecretStoreCorruptError('malformed row (invalid plugin or key name)'),
        };
      if (row.key_id !== this.cipher.keyId) otherKeys.add(row.key_id);
      const forPlugin = sealed.get(row.plugin) ?? new Map<string, SealedValue>();
      forPlugin.set(row.key, { nonce: row.nonce, ciphertext: row.ciphertext, tag: row.tag });
      sealed.set(row.plugin, forPlugin);
    }
    if (otherKeys.size > 0) {
      const theirs = [...otherKeys].map((id) => (/^[0-9a-f]{16}$/.test(id) ? id : 'invalid'));
      return {
        entries: new Map(),
        corruption: new SecretStoreCorruptError(
          `sealed with another SECRETS_KEY (key id ${[...new Set(theirs)].sort().join(', ')}; ` +
            `the configured key's id is ${this.cipher.keyId})`,
        ),
      };
    }
    return { entries: openEntries(sealed, this.cipher) };
  }

  /** Takes what was read; returns the plugins whose values (or the store's health) changed. */
  private replace(next: { entries: Entries; corruption?: SecretStoreCorruptError }): PluginName[] {
    const changed = new Set<PluginName>();
    for (const plugin of new Set([...this.entries.keys(), ...next.entries.keys()]))
      if (!sameValues(this.entries.get(plugin), next.entries.get(plugin))) changed.add(plugin);
    if (this.corruption?.message !== next.corruption?.message)
      for (const plugin of [...this.entries.keys(), ...next.entries.keys()]) changed.add(plugin);
    this.entries = next.entries;
    this.corruption = next.corruption;
    if (changed.size > 0 || next.corruption !== undefined) this.revisionCounter += 1;
    return [...changed].sort();
  }

  private apply(entries: Entries): void {
    this.entries = entries;
    this.revisionCounter += 1;
  }
}

async function nextGeneration(client: PoolClient): Promise<string> {
  const row = await client.query<{ g: string }>("SELECT nextval('portico_state_generation') AS g");
  return row.rows[0].g;
}

async function announce(client: PoolClient, plugin: PluginName, generation: string): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [
    SECRETS_CHANNEL,
    JSON.stringify({ plugin, generation: Number(generation) }),
  ]);
}

/** Whether two plugins' values are the same sealed values (a new nonce is a new value). */
function sameValues(
  a: ReadonlyMap<string, { sealed: SealedValue }> | undefined,
  b: ReadonlyMap<string, { sealed: SealedValue }> | undefined,
): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [key, entry] of a ?? []) {
    const other = b?.get(key)?.sealed;
    if (
      other === undefined ||
      other.nonce !== entry.sealed.nonce ||
      other.ciphertext !== entry.sealed.ciphertext ||
      other.tag !== entry.sealed.tag
    )
      return false;
  }
  return true;
}
