import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';

import { Logger } from '@nestjs/common';
import { Pool } from 'pg';

import { DatabaseListener, LISTENER_APPLICATION_NAME } from '../../src/database/database-listener';
import { migrate } from '../../src/database/migrate';
import { PgSecretStore } from '../../src/plugins/secrets/pg-secret-store';
import { SecretCipher } from '../../src/plugins/secrets/secret-cipher';
import { SecretStoreCorruptError } from '../../src/plugins/secrets/secret-store-corrupt.error';
import { PluginException, PluginExceptionCode } from '../../src/plugins/shared/plugin.exception';
import {
  backends,
  describeWithPostgres,
  PostgresServer,
  startPostgres,
  terminateBackends,
} from '../helpers/postgres';
import { runTs } from '../helpers/run-ts';
import { waitFor } from '../helpers/wait';

/**
 * The encrypted secret store in PostgreSQL against a real server: values sealed before they
 * reach the database, bound to plugin and key, another replica's writes found by notification
 * and after a lost listener, reads kept and writes refused while the database is down, rekey.
 */
describeWithPostgres('PgSecretStore (real PostgreSQL)')('PgSecretStore', () => {
  let server: PostgresServer;
  let url: string;
  let pool: Pool;
  const key = randomBytes(32);
  const pools: Pool[] = [];
  const listeners: DatabaseListener[] = [];
  const stops: (() => void)[] = [];

  /** A replica's store: a pool and a listener of its own, as each Portico process has. */
  const replica = (cipherKey: Buffer = key): PgSecretStore => {
    const p = new Pool({ connectionString: url, max: 4 });
    p.on('error', () => undefined);
    pools.push(p);
    const listener = new DatabaseListener({ connectionString: url }, 'test');
    listeners.push(listener);
    return new PgSecretStore(p, new SecretCipher(cipherKey), 'test', listener);
  };

  /** Follows `store`'s outside changes; `seen` collects the plugins reported, in order. */
  const follow = async (
    store: PgSecretStore,
  ): Promise<{ seen: string[][]; loads: () => number }> => {
    const seen: string[][] = [];
    stops.push(store.watch((plugins) => seen.push([...plugins])));
    // The first reload runs once the listener is connected; wait until it is.
    const database = new URL(url).pathname.slice(1);
    await waitFor(
      async () =>
        (await backends(server.url, { applicationName: LISTENER_APPLICATION_NAME, database }))
          .length >= 1,
      10_000,
      'the listener to connect',
    );
    return { seen, loads: () => seen.length };
  };

  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);

  beforeEach(async () => {
    url = await server.createDatabase();
    pool = new Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    pools.push(pool);
    await migrate(pool);
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop();
    for (const listener of listeners.splice(0)) listener.stop();
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    jest.restoreAllMocks();
  });

  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  it('stores, reads and deletes; the database holds sealed values only', async () => {
    const store = replica();
    await store.load();
    const value = `s3cret-${randomBytes(8).toString('hex')}`;
    await store.set('echo', 'API_TOKEN', value);
    expect(store.read('echo', 'API_TOKEN')).toBe(value);

    const dump = await pool.query('SELECT * FROM portico_plugin_secret');
    expect(dump.rows).toHaveLength(1);
    const text = JSON.stringify(dump.rows);
    expect(text).not.toContain(value);
    expect(text).not.toContain(Buffer.from(value).toString('base64'));
    expect(dump.rows[0]).toMatchObject({
      plugin: 'echo',
      key: 'API_TOKEN',
      key_id: new SecretCipher(key).keyId,
    });

    // A fresh replica (same key) opens it.
    const other = replica();
    await other.load();
    expect(other.read('echo', 'API_TOKEN')).toBe(value);

    expect(await store.delete('echo', 'API_TOKEN')).toBe(true);
    expect(await store.delete('echo', 'API_TOKEN')).toBe(false);
    expect(store.has('echo', 'API_TOKEN')).toBe(false);
    expect((await pool.query('SELECT 1 FROM portico_plugin_secret')).rowCount).toBe(0);
  });

  it('a value moved to another plugin or key in the database fails authentication', async () => {
    const store = replica();
    await store.load();
    await store.set('echo', 'API_TOKEN', 'value-one');
    await store.set('other', 'API_TOKEN', 'value-two');
    // Someone with database access copies echo's sealed value over other's, and renames echo's.
    await pool.query(
      `UPDATE portico_plugin_secret t SET nonce = s.nonce, ciphertext = s.ciphertext, tag = s.tag
         FROM portico_plugin_secret s WHERE t.plugin = 'other' AND s.plugin = 'echo'`,
    );
    await pool.query(`UPDATE portico_plugin_secret SET key = 'MOVED_KEY' WHERE plugin = 'echo'`);
    const fresh = replica();
    await fresh.load();
    expect(() => fresh.read('other', 'API_TOKEN')).toThrow(/failed authentication/);
    expect(() => fresh.read('echo', 'MOVED_KEY')).toThrow(/failed authentication/);
    expect(fresh.corruptEntries()).toEqual(['echo/MOVED_KEY', 'other/API_TOKEN']);
    // Overwriting a single altered value is allowed (the way to repair it).
    await fresh.set('other', 'API_TOKEN', 'value-three');
    expect(fresh.read('other', 'API_TOKEN')).toBe('value-three');
  });

  it('rows sealed with another SECRETS_KEY: the whole store is refused, naming both key ids', async () => {
    const store = replica();
    await store.load();
    await store.set('echo', 'API_TOKEN', 'value');
    const otherKey = randomBytes(32);
    const wrong = replica(otherKey);
    const error = await wrong.load().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SecretStoreCorruptError);
    expect((error as Error).message).toContain(new SecretCipher(key).keyId);
    expect((error as Error).message).toContain(new SecretCipher(otherKey).keyId);
    expect(() => wrong.read('echo', 'API_TOKEN')).toThrow(SecretStoreCorruptError);
    // And it never writes next to values it cannot open.
    await expect(wrong.set('echo', 'OTHER', 'x')).rejects.toThrow(SecretStoreCorruptError);
  });

  it("another replica's write is seen through the notification, naming the plugin", async () => {
    const writer = replica();
    const reader = replica();
    await writer.load();
    await reader.load();
    const { seen } = await follow(reader);
    await writer.set('echo', 'API_TOKEN', 'first');
    await waitFor(() => reader.has('echo', 'API_TOKEN'), 5_000, 'the reader to see the write');
    expect(reader.read('echo', 'API_TOKEN')).toBe('first');
    expect(seen).toContainEqual(['echo']);
    await writer.delete('echo', 'API_TOKEN');
    await waitFor(() => !reader.has('echo', 'API_TOKEN'), 5_000, 'the reader to see the delete');
    // The writer's own notification changes nothing for it: it already had the value.
    const { seen: own } = await follow(writer);
    await writer.set('echo', 'API_TOKEN', 'second');
    await waitFor(() => reader.has('echo', 'API_TOKEN'), 5_000, 'the reader to see it');
    await new Promise((r) => setTimeout(r, 300));
    expect(own.flat()).not.toContain('echo');
  });

  it('writes of two replicas to different keys of one plugin at once: none is lost', async () => {
    const a = replica();
    const b = replica();
    await a.load();
    await b.load();
    const keys = Array.from({ length: 20 }, (_, i) => `KEY_${i}`);
    await Promise.all(keys.map((k, i) => (i % 2 === 0 ? a : b).set('echo', k, `v-${k}`)));
    const check = replica();
    await check.load();
    for (const k of keys) expect(check.read('echo', k)).toBe(`v-${k}`);
  });

  it('the listener killed while a value changes → it reconnects and finds the change', async () => {
    const writer = replica();
    const reader = replica();
    await writer.load();
    await reader.load();
    await follow(reader);
    const killed = await terminateBackends(server.url, {
      applicationName: LISTENER_APPLICATION_NAME,
      database: new URL(url).pathname.slice(1),
    });
    expect(killed).toHaveLength(1);
    // Made while no one listens: its NOTIFY reaches nobody.
    await writer.set('echo', 'API_TOKEN', 'while-cut-off');
    await waitFor(() => reader.has('echo', 'API_TOKEN'), 15_000, 'the reload after reconnect');
    expect(reader.read('echo', 'API_TOKEN')).toBe('while-cut-off');
  }, 30_000);

  it('the database stopped: reads keep the last values, writes get 503; started: writes work', async () => {
    const store = replica();
    await store.load();
    await store.set('echo', 'API_TOKEN', 'kept');
    await server.stopServer('fast');
    try {
      expect(store.read('echo', 'API_TOKEN')).toBe('kept');
      for (const write of [
        () => store.set('echo', 'API_TOKEN', 'new'),
        () => store.delete('echo', 'API_TOKEN'),
      ]) {
        const refused = await write().catch((err: unknown) => err);
        expect(refused).toBeInstanceOf(PluginException);
        expect((refused as PluginException).code).toBe(PluginExceptionCode.STATE_UNAVAILABLE);
        expect((refused as Error).message).toMatch(/^secrets cannot be changed now/);
      }
      expect(store.read('echo', 'API_TOKEN')).toBe('kept');
    } finally {
      await server.startServer();
    }
    await store.set('echo', 'API_TOKEN', 'after');
    expect(store.read('echo', 'API_TOKEN')).toBe('after');
  }, 60_000);

  it('rekey re-seals every row with the new key; a value that does not open stops it', async () => {
    const store = replica();
    await store.load();
    await store.set('echo', 'A_KEY', 'one');
    await store.set('other', 'B_KEY', 'two');
    const newKey = randomBytes(32);
    expect(await store.rekey(new SecretCipher(newKey))).toBe(2);
    const ids = await pool.query<{ key_id: string }>(
      'SELECT DISTINCT key_id FROM portico_plugin_secret',
    );
    expect(ids.rows).toEqual([{ key_id: new SecretCipher(newKey).keyId }]);
    const reopened = replica(newKey);
    await reopened.load();
    expect(reopened.read('echo', 'A_KEY')).toBe('one');
    expect(reopened.read('other', 'B_KEY')).toBe('two');

    // One altered row: the rotation refuses and changes nothing.
    await pool.query(`UPDATE portico_plugin_secret SET tag = $1 WHERE plugin = 'echo'`, [
      randomBytes(16).toString('base64'),
    ]);
    const before = await pool.query('SELECT * FROM portico_plugin_secret ORDER BY plugin');
    await expect(reopened.rekey(new SecretCipher(randomBytes(32)))).rejects.toThrow(
      /1 stored value\(s\) failed authentication: echo\/A_KEY/,
    );
    const after = await pool.query('SELECT * FROM portico_plugin_secret ORDER BY plugin');
    expect(after.rows).toEqual(before.rows);
  });

  it('npm run secrets:rotate with DATABASE_URL re-seals the rows; the wrong current key changes nothing', async () => {
    const store = replica();
    await store.load();
    await store.set('echo', 'API_TOKEN', 'rotate-me');
    const newKey = randomBytes(32).toString('base64');
    const env = { DATABASE_URL: url, DATA_DIR: tmpdir(), NEW_SECRETS_KEY: newKey };

    const wrong = await runTs('scripts/secrets-rotate.ts', [], {
      ...env,
      SECRETS_KEY: randomBytes(32).toString('base64'),
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('sealed with another SECRETS_KEY');
    expect(wrong.stderr).toContain('nothing was changed');

    const done = await runTs('scripts/secrets-rotate.ts', [], {
      ...env,
      SECRETS_KEY: key.toString('base64'),
    });
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('re-encrypted 1 secret value(s) in the database at 127.0.0.1:');
    expect(done.stdout).not.toContain('rotate-me');
    const reopened = replica(Buffer.from(newKey, 'base64'));
    await reopened.load();
    expect(reopened.read('echo', 'API_TOKEN')).toBe('rotate-me');
  }, 60_000);
});
