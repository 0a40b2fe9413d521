import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';

import { SerialQueue } from '../../common/serial-queue';
import { PorticoConfig } from '../../config/portico-config';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import type { PluginName } from '../shared/plugin.types';
import { MANIFEST_FILE, MANIFEST_MAX_BYTES } from './manifest.constants';
import type { ManifestDto } from './manifest.dto';
import { parseManifest } from './manifest-validator';
import type { PluginDescriptor, PluginStateChange, RescanResult } from './plugin-descriptor';
import { hasHiddenSegment, isRelativePluginPath, realFileInside } from './plugin-path';
import {
  PLUGIN_STATE_STORE,
  PluginState,
  PluginStatePatch,
  PluginStateSource,
  PluginStateStore,
} from './plugin-state.store';

/** One plugin folder after its manifest was read and checked, before names are assigned. */
interface InspectedFolder {
  readonly folder: string;
  readonly dir: string;
  readonly manifest?: ManifestDto;
  readonly invalidReason?: string;
  /** The manifest's name when that field is valid, even if something else is not. */
  readonly declaredName?: PluginName;
}

/**
 * Discovers plugins under PLUGINS_DIR and remembers which are enabled. It only reads the disk:
 * starting and stopping servers is up to whoever calls scan() and acts on its result.
 */
@Injectable()
export class PluginRegistry implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PluginRegistry.name);
  private plugins = new Map<PluginName, PluginDescriptor>();
  private states?: Map<PluginName, PluginState>;
  private missingDirLogged = false;
  /** scan() and setEnabled() run one at a time so that neither sees the other half-done. */
  private readonly queue = new SerialQueue();
  private readonly accessListeners = new Set<(name: PluginName) => void>();
  private readonly stateListeners = new Set<(changes: readonly PluginStateChange[]) => void>();
  private unwatch: (() => void) | undefined;
  /** A reload queued behind other work and not started yet (see `reloadStates`). */
  private reloadWaiting: Promise<void> | undefined;
  /** PLUGINS_CONFIG names no plugin under PLUGINS_DIR has (a typo, or not deployed yet). */
  private notInstalled: PluginName[] = [];

  public constructor(
    private readonly config: PorticoConfig,
    @Inject(PLUGIN_STATE_STORE) private readonly store: PluginStateStore,
  ) {}

  /** A store changed from outside (PLUGINS_CONFIG re-read) is applied as soon as it is seen. */
  public onModuleInit(): void {
    this.unwatch = this.store.watch?.(() => {
      // reloadStates() runs on the queue and never rejects: a failure is logged there.
      void this.reloadStates();
    });
  }

  public onModuleDestroy(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /** Where enable flags and roles come from, for `/readyz`. */
  public stateSource(): PluginStateSource | undefined {
    const source = this.store.describe?.();
    if (source === undefined || this.notInstalled.length === 0) return source;
    return { ...source, notInstalled: this.notInstalled };
  }

  /**
   * Calls `listener(changes)` after the stored states changed from outside (a new PLUGINS_CONFIG)
   * and the descriptors were updated: acting on them (start, stop) is the listener's job.
   * Access listeners are told first. Returns an unsubscribe.
   */
  public onStateChange(listener: (changes: readonly PluginStateChange[]) => void): () => void {
    this.stateListeners.add(listener);
    return () => {
      this.stateListeners.delete(listener);
    };
  }

  /** Reads PLUGINS_DIR again and reports which plugins appeared, disappeared or changed. */
  public scan(): Promise<RescanResult> {
    return this.queue.run(() => this.rescan());
  }

  /** Every known plugin, valid or not, sorted by name. */
  public list(): PluginDescriptor[] {
    return [...this.plugins.values()].sort((a, b) => compare(a.name, b.name));
  }

  public get(name: PluginName): PluginDescriptor | undefined {
    return this.plugins.get(name);
  }

  /** The plugin, or PluginException UNKNOWN_PLUGIN (404). */
  public require(name: PluginName): PluginDescriptor {
    const plugin = this.plugins.get(name);
    if (plugin === undefined)
      throw new PluginException(PluginExceptionCode.UNKNOWN_PLUGIN, `Unknown plugin "${name}"`);
    return plugin;
  }

  /** Persists the enable flag (it outlives restarts and rescans) and returns the new descriptor. */
  public setEnabled(name: PluginName, enabled: boolean): Promise<PluginDescriptor> {
    return this.updateState(name, { enabled });
  }

  /** Persists the roles allowed to use the plugin (empty = every user); tells `onAccessChange`. */
  public async setAccess(name: PluginName, roles: readonly string[]): Promise<PluginDescriptor> {
    const descriptor = await this.updateState(name, { roles: [...new Set(roles)].sort() });
    for (const listener of [...this.accessListeners]) listener(name);
    return descriptor;
  }

  /** Calls `listener(name)` after a plugin's access roles changed; returns an unsubscribe. */
  public onAccessChange(listener: (name: PluginName) => void): () => void {
    this.accessListeners.add(listener);
    return () => {
      this.accessListeners.delete(listener);
    };
  }

  private updateState(name: PluginName, patch: PluginStatePatch): Promise<PluginDescriptor> {
    return this.queue.run(async () => {
      const plugin = this.require(name);
      const states = new Map(await this.loadStates());
      let state: PluginState;
      if (this.store.patch !== undefined) {
        // The store applies the change itself (atomically, where other replicas write too).
        state = await this.store.patch(name, patch);
        states.set(name, state);
      } else {
        state = {
          enabled: plugin.enabled,
          roles: plugin.accessRoles,
          ...states.get(name),
          ...patch,
        };
        states.set(name, state);
        await this.store.save(states);
      }
      this.states = states;
      const updated = withState(plugin, state);
      this.plugins.set(name, updated);
      return updated;
    });
  }

  /**
   * Takes the store's states again (it said they changed), updates every descriptor, and tells
   * the listeners which plugins' enable flag, roles or restart policy changed.
   */
  private reloadStates(): Promise<void> {
    // A burst of changes (one notification each) needs one reload, not one per change: a reload
    // still waiting in the queue will read them all. The flag drops when the reload starts, so a
    // change that comes in while it runs gets a reload of its own.
    if (this.reloadWaiting !== undefined) return this.reloadWaiting;
    this.reloadWaiting = this.queue
      .run(async () => {
        this.reloadWaiting = undefined;
        const states = await this.store.load();
        this.states = states;
        const changes: PluginStateChange[] = [];
        for (const plugin of this.plugins.values()) {
          const updated = withState(plugin, states.get(plugin.name));
          const change: PluginStateChange = {
            name: plugin.name,
            enabled: updated.enabled !== plugin.enabled,
            access: !sameList(updated.accessRoles, plugin.accessRoles),
            restart:
              JSON.stringify(updated.restartOverrides) !== JSON.stringify(plugin.restartOverrides),
          };
          this.plugins.set(plugin.name, updated);
          if (change.enabled || change.access || change.restart) changes.push(change);
        }
        this.logger.log({ event: 'plugin_states_reloaded', changed: changes.map((c) => c.name) });
        this.checkNotInstalled(states);
        for (const change of changes.filter((c) => c.access))
          for (const listener of [...this.accessListeners]) listener(change.name);
        if (changes.length > 0) for (const listener of [...this.stateListeners]) listener(changes);
      })
      .catch((err: unknown) => {
        this.logger.error({ event: 'plugin_states_reload_failed', reason: (err as Error).message });
      });
    return this.reloadWaiting;
  }

  /**
   * The real path of a regular file inside a valid plugin's folder. Anything else (a path with
   * `..`, an absolute path, a dotfile, a symlink leading out, a folder, nothing at all) is
   * PluginException FILE_NOT_FOUND; an unknown plugin is UNKNOWN_PLUGIN.
   */
  public async resolveFile(name: PluginName, relPath: string): Promise<string> {
    const plugin = this.require(name);
    const notFound = new PluginException(PluginExceptionCode.FILE_NOT_FOUND, 'File not found');
    if (plugin.manifest === undefined) throw notFound;
    if (!isRelativePluginPath(relPath) || hasHiddenSegment(relPath)) throw notFound;
    const real = await realFileInside(plugin.dir, relPath);
    if (real === undefined) throw notFound;
    return real;
  }

  /**
   * A declared name no plugin has is most likely a typo (`ecoh: {enabled: false}` leaves `echo`
   * running and open): warned once per change of the list, and shown in `/readyz`. A store the
   * API writes keeps the state of removed plugins on purpose, so only a declarative one counts.
   */
  private checkNotInstalled(states: ReadonlyMap<PluginName, PluginState>): void {
    if (this.store.describe?.().source !== 'PLUGINS_CONFIG') return;
    const names = [...states.keys()].filter((n) => !this.plugins.has(n)).sort(compare);
    if (sameList(names, this.notInstalled)) return;
    this.notInstalled = names;
    if (names.length > 0)
      this.logger.warn({
        event: 'plugins_config_not_installed',
        plugins: names,
        hint: 'listed in PLUGINS_CONFIG but not found under PLUGINS_DIR (a misspelt name?)',
      });
  }

  private async loadStates(): Promise<Map<PluginName, PluginState>> {
    this.states ??= await this.store.load();
    return this.states;
  }

  private async rescan(): Promise<RescanResult> {
    const states = await this.loadStates();
    const folders = await this.pluginFolders();
    const inspected = await Promise.all(folders.map((f) => this.inspect(f.folder, f.dir)));
    const next = new Map<PluginName, PluginDescriptor>();
    for (const plugin of assignNames(inspected)) {
      next.set(plugin.name, withState(plugin, states.get(plugin.name)));
    }

    const previous = this.plugins;
    const result: RescanResult = {
      added: [...next.keys()].filter((n) => !previous.has(n)).sort(compare),
      removed: [...previous.keys()].filter((n) => !next.has(n)).sort(compare),
      changed: [...next.keys()]
        .filter((n) => previous.has(n) && fingerprint(previous.get(n)) !== fingerprint(next.get(n)))
        .sort(compare),
    };
    this.plugins = next;
    this.checkNotInstalled(states);

    for (const plugin of next.values()) {
      if (plugin.invalidReason !== undefined)
        this.logger.warn({
          plugin: plugin.name,
          event: 'manifest_invalid',
          folder: plugin.folder,
          reason: plugin.invalidReason,
        });
    }
    this.logger.debug({ event: 'plugins_scanned', dir: this.config.PLUGINS_DIR, ...result });
    return result;
  }

  /** Sub-folders of PLUGINS_DIR (symlinked ones too) holding a manifest.json, sorted by name. */
  private async pluginFolders(): Promise<{ folder: string; dir: string }[]> {
    const root = this.config.PLUGINS_DIR;
    let names: string[];
    try {
      names = await readdir(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      if (!this.missingDirLogged)
        this.logger.warn({ event: 'plugins_dir_missing', dir: root, reason: code });
      this.missingDirLogged = true;
      return [];
    }
    this.missingDirLogged = false;
    const found: { folder: string; dir: string }[] = [];
    for (const folder of names.sort(compare)) {
      try {
        const dir = await realpath(join(root, folder));
        if (!(await stat(dir)).isDirectory()) continue;
        await lstat(join(dir, MANIFEST_FILE));
        found.push({ folder, dir });
      } catch {
        // not a folder, a dangling link, or no manifest.json: not a plugin
      }
    }
    return found;
  }

  private async inspect(folder: string, dir: string): Promise<InspectedFolder> {
    const invalid = (invalidReason: string, declaredName?: PluginName): InspectedFolder => ({
      folder,
      dir,
      invalidReason,
      declaredName,
    });
    const manifestPath = await realFileInside(dir, MANIFEST_FILE);
    if (manifestPath === undefined)
      return invalid(`${MANIFEST_FILE}: not a regular file inside the plugin folder`);
    let text: string;
    try {
      if ((await stat(manifestPath)).size > MANIFEST_MAX_BYTES)
        return invalid(`${MANIFEST_FILE}: larger than ${MANIFEST_MAX_BYTES} bytes`);
      text = await readFile(manifestPath, 'utf8');
    } catch (err) {
      return invalid(`${MANIFEST_FILE}: cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
    const parsed = parseManifest(text);
    if ('error' in parsed) return invalid(parsed.error, parsed.name);

    const { manifest } = parsed;
    if (hasHiddenSegment(manifest.entry))
      return invalid(`${MANIFEST_FILE}: entry must not be a hidden file or folder`, manifest.name);
    if ((await realFileInside(dir, manifest.entry)) === undefined)
      return invalid(
        `${MANIFEST_FILE}: entry "${manifest.entry}" is not a file inside the plugin folder`,
        manifest.name,
      );
    if (manifest.server !== undefined && (await realFileInside(dir, manifest.server)) === undefined)
      return invalid(
        `${MANIFEST_FILE}: server "${manifest.server}" is not a file inside the plugin folder`,
        manifest.name,
      );
    return { folder, dir, manifest, declaredName: manifest.name };
  }
}

/**
 * Gives every folder a unique name. Valid manifests claim their names first (the first folder in
 * sorted order wins a duplicate), then invalid manifests whose name field is usable; everything
 * else is listed under its folder name (suffixed if even that is taken).
 */
function assignNames(
  folders: InspectedFolder[],
): Omit<PluginDescriptor, 'enabled' | 'accessRoles'>[] {
  const named = new Map<PluginName, Omit<PluginDescriptor, 'enabled' | 'accessRoles'>>();
  const claimedBy = new Map<PluginName, string>();
  const fallback: { folder: InspectedFolder; reason: string }[] = [];

  const claim = (f: InspectedFolder, name: PluginName, reason?: string): void => {
    claimedBy.set(name, f.folder);
    named.set(name, {
      name,
      folder: f.folder,
      dir: f.dir,
      ...(reason === undefined ? { manifest: f.manifest } : { invalidReason: reason }),
    });
  };

  for (const f of folders.filter((x) => x.invalidReason === undefined)) {
    const name = f.declaredName as PluginName;
    const owner = claimedBy.get(name);
    if (owner === undefined) claim(f, name);
    else
      fallback.push({
        folder: f,
        reason: `duplicate plugin name "${name}" (first defined in folder "${owner}")`,
      });
  }
  for (const f of folders.filter((x) => x.invalidReason !== undefined)) {
    const reason = f.invalidReason as string;
    if (f.declaredName !== undefined && !claimedBy.has(f.declaredName))
      claim(f, f.declaredName, reason);
    else fallback.push({ folder: f, reason });
  }
  for (const { folder: f, reason } of fallback.sort((a, b) =>
    compare(a.folder.folder, b.folder.folder),
  )) {
    let name = f.folder;
    for (let n = 2; claimedBy.has(name); n++) name = `${f.folder}-${n}`;
    claim(f, name, reason);
  }
  return [...named.values()];
}

/** The descriptor with the stored state applied (defaults where nothing is stored). */
function withState(
  plugin: Omit<PluginDescriptor, 'enabled' | 'accessRoles' | 'restartOverrides'>,
  state: PluginState | undefined,
): PluginDescriptor {
  return {
    name: plugin.name,
    folder: plugin.folder,
    dir: plugin.dir,
    ...(plugin.manifest !== undefined ? { manifest: plugin.manifest } : {}),
    ...(plugin.invalidReason !== undefined ? { invalidReason: plugin.invalidReason } : {}),
    enabled: state?.enabled ?? true,
    accessRoles: state?.roles ?? [],
    ...(state?.restart !== undefined ? { restartOverrides: state.restart } : {}),
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** What a rescan compares to decide that a plugin changed. */
function fingerprint(plugin: PluginDescriptor | undefined): string {
  return JSON.stringify([plugin?.folder, plugin?.dir, plugin?.manifest, plugin?.invalidReason]);
}

/** Locale-independent order, so that "first folder wins" means the same on every machine. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
