import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '@nestjs/common';

import { MountedSecrets } from '../../../src/plugins/secrets/mounted-secrets';
import { MOUNTED_SECRETS_POLL_MS } from '../../../src/plugins/secrets/secrets.constants';
import { writeSecretVolume } from '../../helpers/kubernetes-volume';

describe('MountedSecrets (PLUGIN_SECRETS_DIR files)', () => {
  let base: string;
  let root: string;
  let warn: jest.SpyInstance;

  beforeEach(() => {
    base = realpathSync(mkdtempSync(join(tmpdir(), 'portico-mounted-')));
    root = join(base, 'secrets');
    mkdirSync(root);
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(base, { recursive: true, force: true });
  });

  const plainFile = (plugin: string, key: string, content: string | Buffer): void => {
    mkdirSync(join(root, plugin), { recursive: true });
    writeFileSync(join(root, plugin, key), content);
  };

  describe('reading', () => {
    it('reads plain files, removing exactly one trailing newline', () => {
      plainFile('board', 'A_TOKEN', 'abc\n');
      plainFile('board', 'B_TOKEN', 'two\n\n');
      plainFile('board', 'C_TOKEN', '  spaced\r\n');
      plainFile('board', 'D_TOKEN', '');
      const values = new MountedSecrets(root).values('board', [
        'A_TOKEN',
        'B_TOKEN',
        'C_TOKEN',
        'D_TOKEN',
        'MISSING',
      ]);
      expect(Object.fromEntries(values)).toEqual({
        A_TOKEN: 'abc',
        B_TOKEN: 'two\n',
        C_TOKEN: '  spaced\r',
        D_TOKEN: '',
      });
    });

    it('follows the Kubernetes ..data symlinks of a volume per plugin', () => {
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'ghp_from_kubernetes' });
      expect(new MountedSecrets(root).values('board', ['GITHUB_TOKEN']).get('GITHUB_TOKEN')).toBe(
        'ghp_from_kubernetes',
      );
    });

    it('follows a single volume whose items are <plugin>/<KEY>', () => {
      writeSecretVolume(root, {});
      mkdirSync(join(root, '..data', 'board'));
      writeFileSync(join(root, '..data', 'board', 'GITHUB_TOKEN'), 'ghp_single_volume');
      symlinkSync(join('..data', 'board'), join(root, 'board'));
      expect(new MountedSecrets(root).values('board', ['GITHUB_TOKEN']).get('GITHUB_TOKEN')).toBe(
        'ghp_single_volume',
      );
    });

    it('works when PLUGIN_SECRETS_DIR itself is a symlink', () => {
      plainFile('board', 'GITHUB_TOKEN', 'via-link');
      symlinkSync(root, join(base, 'link'));
      expect(
        new MountedSecrets(join(base, 'link'))
          .values('board', ['GITHUB_TOKEN'])
          .get('GITHUB_TOKEN'),
      ).toBe('via-link');
    });

    it('never follows a symlink out of PLUGIN_SECRETS_DIR, and says so once', () => {
      writeFileSync(join(base, 'outside'), 'host-file-content');
      writeFileSync(join(base, 'OUTSIDE'), 'host-file-content');
      mkdirSync(join(root, 'board'));
      symlinkSync(join(base, 'outside'), join(root, 'board', 'GITHUB_TOKEN'));
      symlinkSync(base, join(root, 'escape'));
      const mounted = new MountedSecrets(root);
      expect(mounted.values('board', ['GITHUB_TOKEN']).size).toBe(0);
      mounted.refresh('board', ['GITHUB_TOKEN']);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(mounted.values('escape', ['OUTSIDE']).size).toBe(0);
      expect(warn).toHaveBeenCalledTimes(2);
      expect(warn.mock.calls[0][0]).toMatchObject({
        plugin: 'board',
        event: 'mounted_secret_ignored',
        key: 'GITHUB_TOKEN',
        reason: 'resolves outside PLUGIN_SECRETS_DIR',
      });
    });

    it('ignores folders, FIFOs, oversized files, NUL bytes and invalid UTF-8', () => {
      mkdirSync(join(root, 'board', 'A_DIR'), { recursive: true });
      execFileSync('mkfifo', [join(root, 'board', 'B_FIFO')]);
      plainFile('board', 'C_BIG', 'x'.repeat(64 * 1024 + 2));
      plainFile('board', 'D_NUL', 'a\0b');
      plainFile('board', 'E_BAD', Buffer.from([0xff, 0xfe, 0x41]));
      plainFile('board', 'F_MAX', 'y'.repeat(64 * 1024) + '\n');
      const keys = ['A_DIR', 'B_FIFO', 'C_BIG', 'D_NUL', 'E_BAD', 'F_MAX'];
      const values = new MountedSecrets(root).values('board', keys);
      expect([...values.keys()]).toEqual(['F_MAX']);
      expect(warn.mock.calls.map((c: [{ key: string; reason: string }]) => c[0].reason)).toEqual([
        'not a regular file',
        'not a regular file',
        'larger than 65536 bytes',
        'contains a NUL byte',
        'not valid UTF-8',
      ]);
    });

    it('reads nothing for names that are not plugin names or keys', () => {
      plainFile('board', 'GITHUB_TOKEN', 'x');
      const mounted = new MountedSecrets(root);
      expect(mounted.values('..', ['board']).size).toBe(0);
      expect(mounted.values('board', ['../board/GITHUB_TOKEN']).size).toBe(0);
    });

    it('has no values when PLUGIN_SECRETS_DIR does not exist', () => {
      expect(new MountedSecrets(join(base, 'nope')).values('board', ['GITHUB_TOKEN']).size).toBe(0);
    });
  });

  describe('change detection', () => {
    it('sees the Kubernetes ..data swap as a change', () => {
      const dir = join(root, 'board');
      writeSecretVolume(dir, { GITHUB_TOKEN: 'first', OTHER: 'same' });
      const mounted = new MountedSecrets(root);
      const keys = ['GITHUB_TOKEN', 'OTHER'];
      expect(mounted.values('board', keys).get('GITHUB_TOKEN')).toBe('first');
      expect(mounted.refresh('board', keys)).toBe(false);

      const revision = mounted.revision;
      writeSecretVolume(dir, { GITHUB_TOKEN: 'second', OTHER: 'same' });
      expect(mounted.refresh('board', keys)).toBe(true);
      expect(mounted.values('board', keys).get('GITHUB_TOKEN')).toBe('second');
      expect(mounted.revision).not.toBe(revision);
      expect(mounted.refresh('board', keys)).toBe(false);
    });

    it('sees a file appearing or disappearing as a change', () => {
      const mounted = new MountedSecrets(root);
      expect(mounted.refresh('board', ['GITHUB_TOKEN'])).toBe(false);
      plainFile('board', 'GITHUB_TOKEN', 'now-here');
      expect(mounted.refresh('board', ['GITHUB_TOKEN'])).toBe(true);
      unlinkSync(join(root, 'board', 'GITHUB_TOKEN'));
      expect(mounted.refresh('board', ['GITHUB_TOKEN'])).toBe(true);
      expect(mounted.values('board', ['GITHUB_TOKEN']).size).toBe(0);
    });

    it('does not count a first read, or a newly declared key, as a change', () => {
      plainFile('board', 'A_TOKEN', 'a');
      plainFile('board', 'B_TOKEN', 'b');
      const mounted = new MountedSecrets(root);
      expect(mounted.refresh('board', ['A_TOKEN'])).toBe(false);
      expect(mounted.refresh('board', ['A_TOKEN', 'B_TOKEN'])).toBe(false);
      expect(mounted.values('board', ['A_TOKEN', 'B_TOKEN']).get('B_TOKEN')).toBe('b');
    });
  });

  describe('watching', () => {
    const board = new Map([['board', ['GITHUB_TOKEN']]]);

    afterEach(() => jest.useRealTimers());

    it('polls on a timer and tells onChange which plugin changed, until stopped', () => {
      jest.useFakeTimers();
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'first' });
      const mounted = new MountedSecrets(root);
      expect(mounted.values('board', ['GITHUB_TOKEN']).get('GITHUB_TOKEN')).toBe('first');
      const onChange = jest.fn();
      const stop = mounted.watch(() => board, onChange);

      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'second' });
      jest.advanceTimersByTime(MOUNTED_SECRETS_POLL_MS);
      expect(onChange.mock.calls).toEqual([['board']]);
      expect(mounted.values('board', ['GITHUB_TOKEN']).get('GITHUB_TOKEN')).toBe('second');

      stop();
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'third' });
      jest.advanceTimersByTime(10 * MOUNTED_SECRETS_POLL_MS);
      expect(onChange).toHaveBeenCalledTimes(1);
      expect(jest.getTimerCount()).toBe(0);
    });

    it('polls now with poll(), returning the plugins that changed', () => {
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'first' });
      const mounted = new MountedSecrets(root);
      expect(mounted.poll()).toEqual([]);
      const onChange = jest.fn();
      const stop = mounted.watch(() => board, onChange);
      expect(mounted.poll()).toEqual([]);
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'second' });
      expect(mounted.poll()).toEqual(['board']);
      expect(onChange).toHaveBeenCalledWith('board');
      stop();
      expect(mounted.poll()).toEqual([]);
    });

    it('forgets plugins that are no longer watched', () => {
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'first' });
      const mounted = new MountedSecrets(root);
      let targets: ReadonlyMap<string, readonly string[]> = board;
      const stop = mounted.watch(() => targets, jest.fn());
      expect(mounted.poll()).toEqual([]);
      targets = new Map();
      expect(mounted.poll()).toEqual([]);
      writeSecretVolume(join(root, 'board'), { GITHUB_TOKEN: 'second' });
      // Read afresh: a first read is not a change.
      expect(mounted.refresh('board', ['GITHUB_TOKEN'])).toBe(false);
      stop();
    });
  });
});
