import { randomBytes } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AtomicFileOps, nodeAtomicFileOps, WritableFile } from '../../../src/common/atomic-file';
import { SecretCipher } from '../../../src/plugins/secrets/secret-cipher';
import { FileSecretStore } from '../../../src/plugins/secrets/file-secret-store';
import { SecretStoreCorruptError } from '../../../src/plugins/secrets/secret-store-corrupt.error';

interface StoreFile {
  keyId: string;
  secrets: Record<string, Record<string, { nonce: string; ciphertext: string; tag: string }>>;
}

describe('FileSecretStore (encrypted values in DATA_DIR)', () => {
  let dir: string;
  let file: string;
  const key = randomBytes(32);
  const cipher = new SecretCipher(key);

  const newStore = (ops?: AtomicFileOps, c = cipher): FileSecretStore => {
    const store = new FileSecretStore(file, c, ops);
    store.load();
    return store;
  };
  const onDisk = (): StoreFile => JSON.parse(readFileSync(file, 'utf8')) as StoreFile;
  const writeDisk = (body: StoreFile): void => writeFileSync(file, JSON.stringify(body));
  const corruptReason = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(SecretStoreCorruptError);
      expect((err as Error).message).toMatch(/^secret store is corrupt: /);
      return (err as SecretStoreCorruptError).reason;
    }
    throw new Error('expected SecretStoreCorruptError');
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-store-'));
    file = join(dir, 'secrets.enc.json');
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('round trip', () => {
    it('starts empty when there is no file', () => {
      const store = newStore();
      expect(store.read('a', 'TOKEN')).toBeUndefined();
      expect(store.corrupt).toBeUndefined();
    });

    it('returns what was stored, also after a reload from disk', async () => {
      const store = newStore();
      await store.set('board', 'GITHUB_TOKEN', 'ghp_abcdef123456');
      await store.set('board', 'EMPTY', '');
      await store.set('assistant', 'MODEL_KEY', 'sk-ünïcødé-🔑');
      expect(store.read('board', 'GITHUB_TOKEN')).toBe('ghp_abcdef123456');

      const again = newStore();
      expect(again.read('board', 'GITHUB_TOKEN')).toBe('ghp_abcdef123456');
      expect(again.read('board', 'EMPTY')).toBe('');
      expect(again.read('assistant', 'MODEL_KEY')).toBe('sk-ünïcødé-🔑');
      expect(again.has('board', 'EMPTY')).toBe(true);
      expect(again.values('board').sort()).toEqual(['', 'ghp_abcdef123456']);
    });

    it('deletes a value and says whether there was one', async () => {
      const store = newStore();
      await store.set('board', 'GITHUB_TOKEN', 'ghp_abcdef123456');
      await expect(store.delete('board', 'GITHUB_TOKEN')).resolves.toBe(true);
      await expect(store.delete('board', 'GITHUB_TOKEN')).resolves.toBe(false);
      expect(newStore().read('board', 'GITHUB_TOKEN')).toBeUndefined();
      expect(onDisk().secrets).toEqual({});
    });

    it('never writes a value, or its base64, to disk, and the file is mode 0600', async () => {
      const store = newStore();
      const value = 'super-secret-value-1234';
      await store.set('board', 'GITHUB_TOKEN', value);
      const text = readFileSync(file, 'utf8');
      expect(text).not.toContain(value);
      expect(text).not.toContain(Buffer.from(value).toString('base64').slice(0, 12));
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(onDisk().keyId).toBe(cipher.keyId);
    });
  });

  describe('fresh nonce per write', () => {
    it('seals the same value differently every time', async () => {
      const store = newStore();
      await store.set('board', 'GITHUB_TOKEN', 'same-value-same-value');
      const first = onDisk().secrets.board.GITHUB_TOKEN;
      await store.set('board', 'GITHUB_TOKEN', 'same-value-same-value');
      const second = onDisk().secrets.board.GITHUB_TOKEN;
      expect(second.nonce).not.toBe(first.nonce);
      expect(second.ciphertext).not.toBe(first.ciphertext);
      expect(Buffer.from(second.nonce, 'base64')).toHaveLength(12);
    });
  });

  describe('tampering', () => {
    beforeEach(async () => {
      const store = newStore();
      await store.set('board', 'GITHUB_TOKEN', 'ghp_board_token_value');
      await store.set('assistant', 'MODEL_KEY', 'sk-assistant-key-value');
      await store.set('assistant', 'OTHER', 'another-value');
    });

    it('detects a changed ciphertext byte; other values stay readable', () => {
      const body = onDisk();
      const ct = Buffer.from(body.secrets.board.GITHUB_TOKEN.ciphertext, 'base64');
      ct[0] ^= 0x01;
      body.secrets.board.GITHUB_TOKEN.ciphertext = ct.toString('base64');
      writeDisk(body);

      const store = newStore();
      const reason = corruptReason(() => store.read('board', 'GITHUB_TOKEN'));
      expect(reason).toMatch(/GITHUB_TOKEN for plugin board failed authentication/);
      expect(store.read('assistant', 'MODEL_KEY')).toBe('sk-assistant-key-value');
      expect(store.corruptEntries()).toEqual(['board/GITHUB_TOKEN']);
    });

    it('detects a changed tag or nonce', () => {
      const body = onDisk();
      body.secrets.board.GITHUB_TOKEN.tag = Buffer.alloc(16).toString('base64');
      body.secrets.assistant.MODEL_KEY.nonce = Buffer.alloc(12).toString('base64');
      writeDisk(body);
      const store = newStore();
      expect(store.corruptEntries()).toEqual(['assistant/MODEL_KEY', 'board/GITHUB_TOKEN']);
    });

    it('detects ciphertexts swapped between plugins', () => {
      const body = onDisk();
      const board = body.secrets.board.GITHUB_TOKEN;
      body.secrets.board.GITHUB_TOKEN = body.secrets.assistant.MODEL_KEY;
      body.secrets.assistant.MODEL_KEY = board;
      writeDisk(body);
      const store = newStore();
      corruptReason(() => store.read('board', 'GITHUB_TOKEN'));
      corruptReason(() => store.read('assistant', 'MODEL_KEY'));
    });

    it('detects a value moved to another key of the same plugin, or copied to another plugin', () => {
      const body = onDisk();
      body.secrets.assistant.OTHER = body.secrets.assistant.MODEL_KEY;
      body.secrets.board.STOLEN = body.secrets.assistant.MODEL_KEY;
      writeDisk(body);
      const store = newStore();
      expect(store.corruptEntries()).toEqual(['assistant/OTHER', 'board/STOLEN']);
      expect(store.read('assistant', 'MODEL_KEY')).toBe('sk-assistant-key-value');
    });

    it('reports a file that is not JSON, or not a store, as corrupt as a whole', () => {
      writeFileSync(file, '{"format":"portico-secrets", trunc');
      const store = new FileSecretStore(file, cipher);
      expect(corruptReason(() => store.load())).toMatch(/not valid JSON/);
      expect(store.corrupt).toBeInstanceOf(SecretStoreCorruptError);
      corruptReason(() => store.read('board', 'GITHUB_TOKEN'));

      writeFileSync(file, '{"plugins":{}}');
      expect(corruptReason(() => new FileSecretStore(file, cipher).load())).toMatch(
        /not a Portico secret store/,
      );
    });

    it('reports a store sealed with another key, naming both key ids but no key', () => {
      const other = new SecretCipher(randomBytes(32));
      const reason = corruptReason(() => new FileSecretStore(file, other).load());
      expect(reason).toContain(`key id ${cipher.keyId}`);
      expect(reason).toContain(other.keyId);
      expect(reason).not.toContain(key.toString('base64'));
    });

    it('still detects another key when the key id field was edited to match', () => {
      const other = new SecretCipher(randomBytes(32));
      writeDisk({ ...onDisk(), keyId: other.keyId });
      const store = newStore(undefined, other);
      expect(store.corruptEntries()).toHaveLength(3);
    });

    it('refuses to write over a store that is corrupt as a whole', async () => {
      writeFileSync(file, 'garbage');
      const store = new FileSecretStore(file, cipher);
      expect(() => store.load()).toThrow(SecretStoreCorruptError);
      await expect(store.set('board', 'GITHUB_TOKEN', 'x-value')).rejects.toBeInstanceOf(
        SecretStoreCorruptError,
      );
      expect(readFileSync(file, 'utf8')).toBe('garbage');
    });

    it('lets a single altered value be overwritten', async () => {
      const body = onDisk();
      body.secrets.board.GITHUB_TOKEN.tag = Buffer.alloc(16).toString('base64');
      writeDisk(body);
      const store = newStore();
      await store.set('board', 'GITHUB_TOKEN', 'replacement-value');
      expect(newStore().read('board', 'GITHUB_TOKEN')).toBe('replacement-value');
      expect(newStore().corruptEntries()).toEqual([]);
    });
  });

  describe('atomic writes', () => {
    /** Real file system, except that the temp file's write stops half-way with ENOSPC. */
    const diskFullHalfway: AtomicFileOps = {
      ...nodeAtomicFileOps,
      open: async (path, flags, mode): Promise<WritableFile> => {
        const real = await nodeAtomicFileOps.open(path, flags, mode);
        return {
          writeFile: async (data: Buffer) => {
            await real.writeFile(data.subarray(0, data.length >> 1));
            throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
          },
          sync: () => real.sync(),
          stat: (o) => real.stat(o),
          close: () => real.close(),
        };
      },
    };

    it('leaves the previous file intact and no temp file when the write fails mid-way', async () => {
      await newStore().set('board', 'GITHUB_TOKEN', 'old-value-old-value');
      const before = readFileSync(file);
      const store = newStore(diskFullHalfway);

      await expect(store.set('board', 'GITHUB_TOKEN', 'new-value-new-value')).rejects.toThrow(
        /ENOSPC/,
      );

      expect(readFileSync(file).equals(before)).toBe(true);
      expect(readdirSync(dir)).toEqual(['secrets.enc.json']);
      expect(store.read('board', 'GITHUB_TOKEN')).toBe('old-value-old-value');
      expect(newStore().read('board', 'GITHUB_TOKEN')).toBe('old-value-old-value');
    });

    it('leaves the previous file intact when the rename fails, and recovers afterwards', async () => {
      await newStore().set('board', 'GITHUB_TOKEN', 'old-value-old-value');
      let failRename = true;
      const store = newStore({
        ...nodeAtomicFileOps,
        rename: async (from, to) => {
          if (failRename) throw Object.assign(new Error('EIO'), { code: 'EIO' });
          await nodeAtomicFileOps.rename(from, to);
        },
      });
      await expect(store.delete('board', 'GITHUB_TOKEN')).rejects.toThrow(/EIO/);
      expect(newStore().read('board', 'GITHUB_TOKEN')).toBe('old-value-old-value');
      expect(readdirSync(dir)).toEqual(['secrets.enc.json']);

      failRename = false;
      await store.set('board', 'GITHUB_TOKEN', 'next-value-next');
      expect(newStore().read('board', 'GITHUB_TOKEN')).toBe('next-value-next');
    });

    it('removes temp files a crash left behind, but not one being written right now', () => {
      const stale = join(dir, 'secrets.enc.json.123.abcdef.tmp');
      const fresh = join(dir, 'secrets.enc.json.456.abcdef.tmp');
      writeFileSync(stale, 'half');
      writeFileSync(fresh, 'half');
      const old = new Date(Date.now() - 10 * 60_000);
      utimesSync(stale, old, old);
      newStore();
      expect(readdirSync(dir).sort()).toEqual(['secrets.enc.json.456.abcdef.tmp']);
    });
  });

  describe('concurrent writes', () => {
    it('loses no update when many sets and deletes run at once', async () => {
      const store = newStore();
      await store.set('p', 'GONE', 'will-be-deleted');
      const keys = Array.from({ length: 40 }, (_, i) => `KEY_${i}`);
      await Promise.all([
        ...keys.map((k, i) => store.set(i % 2 === 0 ? 'p' : 'q', k, `value-${k}`)),
        store.delete('p', 'GONE'),
      ]);
      const again = newStore();
      keys.forEach((k, i) => expect(again.read(i % 2 === 0 ? 'p' : 'q', k)).toBe(`value-${k}`));
      expect(again.read('p', 'GONE')).toBeUndefined();
    });

    it('applies writes in call order', async () => {
      const store = newStore();
      await Promise.all([
        store.set('p', 'KEY', 'first-value'),
        store.set('p', 'KEY', 'second-value'),
        store.delete('p', 'KEY'),
        store.set('p', 'KEY', 'last-value'),
      ]);
      expect(newStore().read('p', 'KEY')).toBe('last-value');
    });

    it('does not overwrite a value another process wrote since this store last read the file', async () => {
      const mine = newStore();
      await mine.set('p', 'MINE', 'mine-value');
      await newStore().set('p', 'THEIRS', 'theirs-value');
      await mine.set('p', 'MINE2', 'mine-value-2');
      const again = newStore();
      expect(again.read('p', 'THEIRS')).toBe('theirs-value');
      expect(again.read('p', 'MINE2')).toBe('mine-value-2');
    });
  });

  describe('rekey', () => {
    it('re-seals every value with the new key and fresh nonces', async () => {
      const store = newStore();
      await store.set('a', 'ONE', 'value-one');
      await store.set('b', 'TWO', 'value-two');
      const before = onDisk();
      const next = new SecretCipher(randomBytes(32));

      await expect(store.rekey(next)).resolves.toBe(2);

      const after = onDisk();
      expect(after.keyId).toBe(next.keyId);
      expect(after.secrets.a.ONE.nonce).not.toBe(before.secrets.a.ONE.nonce);
      expect(() => new FileSecretStore(file, cipher).load()).toThrow(SecretStoreCorruptError);
      const reopened = newStore(undefined, next);
      expect(reopened.read('a', 'ONE')).toBe('value-one');
      expect(reopened.read('b', 'TWO')).toBe('value-two');
      await store.set('a', 'THREE', 'value-three');
      expect(newStore(undefined, next).read('a', 'THREE')).toBe('value-three');
    });

    it('refuses, changing nothing, when a value does not open with the current key', async () => {
      const store = newStore();
      await store.set('a', 'ONE', 'value-one');
      const body = onDisk();
      body.secrets.a.ONE.tag = Buffer.alloc(16).toString('base64');
      writeDisk(body);
      const text = readFileSync(file, 'utf8');
      await expect(newStore().rekey(new SecretCipher(randomBytes(32)))).rejects.toThrow(
        /1 stored value\(s\) failed authentication: a\/ONE/,
      );
      expect(readFileSync(file, 'utf8')).toBe(text);
    });
  });
});
