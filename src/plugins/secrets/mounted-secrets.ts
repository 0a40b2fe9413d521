import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';

import { Logger } from '@nestjs/common';

import { SECRET_KEY_PATTERN } from '../manifest/manifest.constants';
import { isPluginName, PluginName } from '../shared/plugin.types';
import { MOUNTED_SECRETS_POLL_MS, SECRET_VALUE_MAX_BYTES } from './secrets.constants';

/** What reading one mounted file gave: a value, nothing, or a file that was ignored and why. */
type MountedRead =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'ignored'; readonly reason: string };

/** The keys of each plugin to watch, as the manifests declare them right now. */
export type MountedTargets = ReadonlyMap<PluginName, readonly string[]>;

const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Secret values mounted as files `PLUGIN_SECRETS_DIR/<plugin>/<KEY>`, e.g. a Kubernetes Secret
 * volume, where each file is a symlink `KEY -> ..data/KEY` and `..data` is swapped atomically on
 * update. Symlinks are followed only while they stay inside PLUGIN_SECRETS_DIR. A value is the
 * file's content as UTF-8, with one trailing `\n` removed (what `echo` and most editors add);
 * everything else is kept, including other whitespace. Files that are not regular, larger than
 * 64 KiB, not UTF-8 or that contain NUL are ignored with one warning.
 *
 * Reads are synchronous (a few tiny files) and cached per plugin. `refresh` re-reads one plugin
 * and says whether anything changed; `watch` polls every plugin it is given, because kubelet
 * swaps files without an event a watcher on the folder would reliably see.
 */
export class MountedSecrets {
  private readonly logger = new Logger(MountedSecrets.name);
  private readonly cache = new Map<PluginName, CachedPlugin>();
  /** Last warning per `plugin/KEY`, so a bad file is reported once, not on every poll. */
  private readonly warned = new Map<string, string>();
  private revisionCounter = 0;
  private watching: Watch | undefined;

  public constructor(private readonly root: string) {}

  /** Changes whenever a cached value changes. */
  public get revision(): number {
    return this.revisionCounter;
  }

  /** The plugin's mounted values for these keys (read on first use, then from the cache). */
  public values(plugin: PluginName, keys: readonly string[]): ReadonlyMap<string, string> {
    const cached = this.cache.get(plugin);
    if (cached !== undefined && keys.every((k) => cached.keys.has(k))) return cached.values;
    this.refresh(plugin, keys);
    return this.cache.get(plugin)?.values ?? new Map();
  }

  /**
   * Re-reads the plugin's files for these keys. True when a key that was read before now has
   * a different value, appeared or vanished; a first read, or a key not asked for before (the
   * manifest changed), is not a change.
   */
  public refresh(plugin: PluginName, keys: readonly string[]): boolean {
    const values = new Map<string, string>();
    const rootReal = this.rootRealPath();
    for (const key of keys) {
      const read = rootReal === undefined ? ABSENT : this.readOne(rootReal, plugin, key);
      this.report(plugin, key, read);
      if (read.kind === 'value') values.set(key, read.value);
    }
    const previous = this.cache.get(plugin);
    this.cache.set(plugin, { keys: new Set(keys), values });
    const differs = (key: string): boolean => previous?.values.get(key) !== values.get(key);
    if (keys.some(differs) || (previous?.values.size ?? 0) !== values.size)
      this.revisionCounter += 1;
    return previous !== undefined && keys.some((key) => previous.keys.has(key) && differs(key));
  }

  /**
   * Polls the files of `targets()` every MOUNTED_SECRETS_POLL_MS (kubelet itself takes about a
   * minute to swap them) and calls `onChange(plugin)` for each plugin whose values changed.
   * One watch at a time: a second call replaces the first. Returns a function that stops it.
   * The timer does not keep the process alive.
   */
  public watch(targets: () => MountedTargets, onChange: (plugin: PluginName) => void): () => void {
    this.unwatch();
    const timer = setInterval(() => this.poll(), MOUNTED_SECRETS_POLL_MS);
    timer.unref();
    const watch: Watch = { targets, onChange, timer };
    this.watching = watch;
    return () => {
      if (this.watching === watch) this.unwatch();
    };
  }

  /**
   * One poll of the watch, now: re-reads every target, forgets plugins that are no longer
   * targets, tells `onChange` about each plugin that changed, and returns them.
   */
  public poll(): PluginName[] {
    const watch = this.watching;
    if (watch === undefined) return [];
    const targets = watch.targets();
    const changed = [...targets]
      .filter(([plugin, keys]) => this.refresh(plugin, keys))
      .map(([plugin]) => plugin);
    for (const name of this.cache.keys()) if (!targets.has(name)) this.cache.delete(name);
    for (const plugin of changed) watch.onChange(plugin);
    return changed;
  }

  private unwatch(): void {
    if (this.watching !== undefined) clearInterval(this.watching.timer);
    this.watching = undefined;
  }

  private rootRealPath(): string | undefined {
    try {
      return realpathSync(this.root);
    } catch {
      return undefined;
    }
  }

  private readOne(rootReal: string, plugin: PluginName, key: string): MountedRead {
    // Names are validated before they become path segments, so `..` can never appear.
    if (!isPluginName(plugin) || !SECRET_KEY_PATTERN.test(key)) return ABSENT;
    const path = join(rootReal, plugin, key);
    // Kubernetes may swap `..data` between realpath and open: one retry covers that window.
    const first = readInside(rootReal, path);
    if (first !== RETRY) return first;
    const second = readInside(rootReal, path);
    return second === RETRY ? ABSENT : second;
  }

  private report(plugin: PluginName, key: string, read: MountedRead): void {
    const id = `${plugin}/${key}`;
    if (read.kind !== 'ignored') {
      this.warned.delete(id);
      return;
    }
    if (this.warned.get(id) === read.reason) return;
    this.warned.set(id, read.reason);
    this.logger.warn({ plugin, event: 'mounted_secret_ignored', key, reason: read.reason });
  }
}

interface Watch {
  readonly targets: () => MountedTargets;
  readonly onChange: (plugin: PluginName) => void;
  readonly timer: NodeJS.Timeout;
}

interface CachedPlugin {
  readonly keys: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
}

const ABSENT: MountedRead = { kind: 'absent' };
const RETRY = Symbol('retry');

function readInside(rootReal: string, path: string): MountedRead | typeof RETRY {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return ABSENT;
    return { kind: 'ignored', reason: `cannot be resolved (${code})` };
  }
  if (!real.startsWith(rootReal + sep))
    return { kind: 'ignored', reason: 'resolves outside PLUGIN_SECRETS_DIR' };
  let fd: number;
  try {
    fd = openSync(real, OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The link target was replaced since realpath: resolve again.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return RETRY;
    return { kind: 'ignored', reason: `cannot be opened (${code})` };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { kind: 'ignored', reason: 'not a regular file' };
    if (stats.size > SECRET_VALUE_MAX_BYTES + 1) return tooLarge();
    const bytes = readFileSync(fd);
    const body = bytes[bytes.length - 1] === 0x0a ? bytes.subarray(0, -1) : bytes;
    if (body.length > SECRET_VALUE_MAX_BYTES) return tooLarge();
    if (body.includes(0)) return { kind: 'ignored', reason: 'contains a NUL byte' };
    let value: string;
    try {
      value = UTF8.decode(body);
    } catch {
      return { kind: 'ignored', reason: 'not valid UTF-8' };
    }
    return { kind: 'value', value };
  } catch (err) {
    return { kind: 'ignored', reason: `cannot be read (${(err as NodeJS.ErrnoException).code})` };
  } finally {
    closeSync(fd);
  }
}

function tooLarge(): MountedRead {
  return { kind: 'ignored', reason: `larger than ${SECRET_VALUE_MAX_BYTES} bytes` };
}
