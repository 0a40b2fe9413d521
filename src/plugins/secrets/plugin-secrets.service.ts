import { join } from 'node:path';

import {
  BadRequestException,
  ConflictException,
  Injectable,
  Logger,
  NotFoundException,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';

import { PorticoConfig } from '../../config/portico-config';
import { SECRET_KEY_PATTERN } from '../manifest/manifest.constants';
import { isReservedSecretKey } from '../manifest/manifest.validators';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import type { SecretDeclarationDto } from '../manifest/secret-declaration.dto';
import type { PluginName } from '../shared/plugin.types';
import type { SecretView } from '../plugin-view';
import { SpawnPreconditionError } from '../process/plugin-supervisor';
import { MountedSecrets } from './mounted-secrets';
import { SecretCipher } from './secret-cipher';
import { SecretRedactor } from './secret-redactor';
import { SecretStore, SecretStoreCorruptError } from './secret-store';
import {
  MOUNTED_SECRETS_POLL_MS,
  SECRET_HEADER_MAX_LENGTH,
  SECRET_HEADER_PREFIX,
  SECRET_STORE_FILE,
  SECRET_VALUE_MAX_BYTES,
} from './secrets.constants';

export type SecretChangeListener = (name: PluginName) => void;

/** Where one declared secret's value comes from right now. */
interface Resolved {
  readonly declaration: SecretDeclarationDto;
  readonly value: string | undefined;
  readonly source: 'file' | 'store' | null;
}

/** A header value Node accepts and every proxy passes unchanged: printable ASCII and tab. */
const HEADER_SAFE = /^[\t\x20-\x7e]*$/;

/**
 * Each plugin's secrets (CONTRACT.md §1–§3): declared in its manifest, set by an admin into the
 * encrypted store in DATA_DIR, or mounted as files under PLUGIN_SECRETS_DIR (which win).
 * The one place that knows values: it hands a plugin its own values at spawn (`envFor`) and on
 * RPC requests (`headersFor`), redacts them from logs, and tells listeners when a plugin's
 * values changed so its server can be restarted. No value ever appears in an error or log.
 */
@Injectable()
export class PluginSecretsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PluginSecretsService.name);
  private readonly store: SecretStore | undefined;
  private readonly mounted: MountedSecrets | undefined;
  private readonly listeners = new Set<SecretChangeListener>();
  private readonly redactors = new Map<
    PluginName,
    { revision: string; redactor: SecretRedactor }
  >();
  private allRedactor: { revision: string; redactor: SecretRedactor } | undefined;
  /** Values handed to processes that may still print them, per plugin (see `hold`). */
  private readonly holds = new Map<PluginName, Set<readonly string[]>>();
  private holdsRevision = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  /** The corruption last logged, so it is reported once and not on every spawn. */
  private reported: string | undefined;

  public constructor(
    config: PorticoConfig,
    private readonly registry: PluginRegistry,
  ) {
    const key = SecretCipher.parseKey(config.SECRETS_KEY);
    this.store =
      key === undefined
        ? undefined
        : new SecretStore(join(config.DATA_DIR, SECRET_STORE_FILE), new SecretCipher(key));
    this.mounted =
      config.PLUGIN_SECRETS_DIR === undefined
        ? undefined
        : new MountedSecrets(config.PLUGIN_SECRETS_DIR);
  }

  public async onModuleInit(): Promise<void> {
    await this.load();
  }

  public onModuleDestroy(): void {
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /**
   * Reads the store and starts watching PLUGIN_SECRETS_DIR. A corrupt store never stops the
   * host: it is logged once, and plugins that need a stored value refuse to start.
   */
  public load(): Promise<void> {
    if (this.store === undefined) {
      this.logger.error({ event: 'secret_store_unavailable', reason: 'SECRETS_KEY is not set' });
    } else {
      try {
        this.store.load();
      } catch (err) {
        if (!(err instanceof SecretStoreCorruptError)) throw err;
      }
      this.reportCorruption();
    }
    if (this.mounted !== undefined && this.pollTimer === undefined) {
      this.pollTimer = setInterval(() => this.checkMounted(), MOUNTED_SECRETS_POLL_MS);
      this.pollTimer.unref();
    }
    return Promise.resolve();
  }

  /** The plugin's declared secrets with whether and where each is set; never a value. */
  public list(name: PluginName): SecretView[] {
    return this.resolve(name).map(({ declaration, value, source }) => ({
      key: declaration.key,
      required: declaration.required === true,
      set: value !== undefined,
      source,
    }));
  }

  /**
   * The plugin's own secret values, by key, to add to its environment at spawn. Reads the
   * latest files and store first. SpawnPreconditionError when a value it needs is in a corrupt
   * store or a required one is missing.
   */
  public envFor(name: PluginName): Record<string, string> {
    this.refreshStore();
    // The process about to start gets the current files: no restart needed for this change.
    this.refreshMounted(name, false);
    const resolved = this.resolve(name, true);
    const missing = resolved
      .filter((r) => r.declaration.required === true && r.value === undefined)
      .map((r) => r.declaration.key);
    if (missing.length > 0)
      throw new SpawnPreconditionError(`missing required secrets: ${missing.join(', ')}`);
    const env: Record<string, string> = {};
    for (const { declaration, value } of resolved)
      if (value !== undefined) env[declaration.key] = value;
    return env;
  }

  /** `x-plugin-secret-<lower-cased key>` for each set secret a header can carry. */
  public headersFor(name: PluginName): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const { declaration, value } of this.resolve(name)) {
      if (value === undefined || value.length > SECRET_HEADER_MAX_LENGTH) continue;
      if (!HEADER_SAFE.test(value)) continue;
      headers[SECRET_HEADER_PREFIX + declaration.key.toLowerCase()] = value;
    }
    return headers;
  }

  /** Declared required keys that have no usable value. */
  public missingRequired(name: PluginName): string[] {
    return this.resolve(name)
      .filter((r) => r.declaration.required === true && r.value === undefined)
      .map((r) => r.declaration.key);
  }

  /** Stores a value (400 invalid, 404 unknown plugin, 409 corrupt store); listeners are told. */
  public async set(name: PluginName, key: string, value: string): Promise<void> {
    this.requireDeclared(name, key);
    validateValue(value);
    const store = this.requireStore();
    try {
      await store.set(name, key, value);
    } catch (err) {
      throw this.storeFailure(err, 'the value was not saved');
    }
    this.emit(name);
  }

  /** Removes a stored value (404 if none); a value from a mounted file can't be deleted here. */
  public async delete(name: PluginName, key: string): Promise<void> {
    const declared = this.declaredKeys(this.requirePlugin(name));
    assertKeyFormat(key);
    const store = this.requireStore();
    if (!declared.includes(key) && !store.has(name, key))
      throw new BadRequestException(`plugin ${name} does not declare a secret ${key}`);
    let removed: boolean;
    try {
      removed = await store.delete(name, key);
    } catch (err) {
      throw this.storeFailure(err, 'nothing was deleted');
    }
    if (removed) {
      this.emit(name);
      return;
    }
    this.refreshMounted(name, true);
    if (this.mounted?.values(name, declared).has(key) === true)
      throw new ConflictException(
        `secret ${key} comes from a mounted file; remove it from PLUGIN_SECRETS_DIR instead`,
      );
    throw new NotFoundException(`secret ${key} is not set`);
  }

  /**
   * Keeps `values`, the secrets a process of the plugin was given at spawn, redacted from the
   * plugin's output and from host logs until the returned function is called, even after they
   * were rotated or deleted: its owner calls it once that process has exited and its output
   * has ended, so nothing the old process prints while stopping leaks. Calling it again is a
   * no-op.
   */
  public hold(name: PluginName, values: Iterable<string>): () => void {
    const held: readonly string[] = [...values];
    if (held.length === 0) return () => undefined;
    let forPlugin = this.holds.get(name);
    if (forPlugin === undefined) {
      forPlugin = new Set();
      this.holds.set(name, forPlugin);
    }
    forPlugin.add(held);
    this.holdsRevision += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const current = this.holds.get(name);
      current?.delete(held);
      if (current?.size === 0) this.holds.delete(name);
      this.holdsRevision += 1;
    };
  }

  /**
   * The line with every value of the plugin's secrets (and their encodings) hidden: its current
   * values and those its processes still hold (`hold`); `cutAtEnd` when the line was truncated,
   * so a value cut in two at its end is hidden too.
   */
  public redact(name: PluginName, line: string, cutAtEnd = false): string {
    const revision = this.revision();
    let cached = this.redactors.get(name);
    if (cached?.revision !== revision) {
      const values = [
        ...(this.store?.values(name) ?? []),
        ...this.mountedValues(name),
        ...[...(this.holds.get(name) ?? [])].flat(),
      ];
      cached = { revision, redactor: new SecretRedactor(values) };
      this.redactors.set(name, cached);
    }
    return cached.redactor.redact(line, cutAtEnd);
  }

  /** The text with every known or still held secret value of every plugin hidden (host logs). */
  public redactAll(text: string): string {
    const revision = this.revision();
    if (this.allRedactor?.revision !== revision) {
      const values = [
        ...(this.store?.values() ?? []),
        ...(this.mounted?.allValues() ?? []),
        ...[...this.holds.values()].flatMap((held) => [...held].flat()),
      ];
      this.allRedactor = { revision, redactor: new SecretRedactor(values) };
    }
    return this.allRedactor.redactor.redact(text);
  }

  /**
   * Calls `listener(name)` after a secret of plugin `name` was set or deleted, or its mounted
   * files changed. Returns a function that removes the listener.
   */
  public onChange(listener: SecretChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Re-reads PLUGIN_SECRETS_DIR now (it is also polled); returns the plugins that changed. */
  public checkMounted(): PluginName[] {
    if (this.mounted === undefined) return [];
    const changed: PluginName[] = [];
    const names = new Set<PluginName>();
    for (const descriptor of this.registry.list()) {
      names.add(descriptor.name);
      if (this.refreshMounted(descriptor.name, true)) changed.push(descriptor.name);
    }
    this.mounted.retain(names);
    return changed;
  }

  /** Re-reads the plugin's mounted files now; `notify`: tell listeners if they changed. */
  private refreshMounted(name: PluginName, notify: boolean): boolean {
    const keys = this.declaredKeys(name);
    if (this.mounted === undefined || keys.length === 0) return false;
    const changed = this.mounted.refresh(name, keys);
    if (changed && notify) {
      this.logger.log({ plugin: name, event: 'mounted_secrets_changed' });
      this.emit(name);
    }
    return changed;
  }

  private resolve(name: PluginName, strict = false): Resolved[] {
    const declarations = this.registry.get(name)?.manifest?.secrets ?? [];
    if (declarations.length === 0) return [];
    const keys = declarations.map((d) => d.key);
    const files = this.mounted?.values(name, keys);
    return declarations.map((declaration): Resolved => {
      const fromFile = files?.get(declaration.key);
      if (fromFile !== undefined) return { declaration, value: fromFile, source: 'file' };
      let stored: string | undefined;
      try {
        if (this.store === undefined) throw new SecretStoreCorruptError('SECRETS_KEY is not set');
        stored = this.store.read(name, declaration.key);
      } catch (err) {
        if (!(err instanceof SecretStoreCorruptError)) throw err;
        // A plugin is never started without a value it may have had: fail rather than guess.
        if (strict) throw new SpawnPreconditionError(err.message);
        stored = undefined;
      }
      return stored === undefined
        ? { declaration, value: undefined, source: null }
        : { declaration, value: stored, source: 'store' };
    });
  }

  private declaredKeys(name: PluginName): string[] {
    return (this.registry.get(name)?.manifest?.secrets ?? []).map((d) => d.key);
  }

  private requirePlugin(name: PluginName): PluginName {
    return this.registry.require(name).name;
  }

  private requireDeclared(name: PluginName, key: string): void {
    this.requirePlugin(name);
    assertKeyFormat(key);
    if (!this.declaredKeys(name).includes(key))
      throw new BadRequestException(`plugin ${name} does not declare a secret ${key}`);
  }

  private requireStore(): SecretStore {
    if (this.store === undefined)
      throw new ConflictException('secret store is unavailable: SECRETS_KEY is not set');
    return this.store;
  }

  /** 409 for a corrupt store (logged once); anything else (disk full, ...) stays a 500. */
  private storeFailure(err: unknown, consequence: string): unknown {
    if (!(err instanceof SecretStoreCorruptError)) return err;
    this.reportCorruption();
    return new ConflictException(`${err.message}; ${consequence}`);
  }

  private refreshStore(): void {
    if (this.store === undefined) return;
    if (this.store.refresh()) this.reportCorruption();
  }

  private reportCorruption(): void {
    if (this.store === undefined) return;
    const whole = this.store.corrupt;
    const entries = this.store.corruptEntries();
    const reason =
      whole !== undefined
        ? whole.reason
        : entries.length > 0
          ? `${entries.length} stored value(s) failed authentication`
          : undefined;
    const fingerprint = reason === undefined ? undefined : `${reason}|${entries.join(',')}`;
    if (fingerprint !== undefined && fingerprint !== this.reported)
      this.logger.error({
        event: 'secret_store_corrupt',
        file: this.store.file,
        reason,
        ...(entries.length > 0 ? { entries } : {}),
      });
    this.reported = fingerprint;
  }

  private mountedValues(name: PluginName): string[] {
    const keys = this.declaredKeys(name);
    return this.mounted === undefined || keys.length === 0
      ? []
      : [...this.mounted.values(name, keys).values()];
  }

  private revision(): string {
    return `${this.store?.revision ?? 0}:${this.mounted?.revision ?? 0}:${this.holdsRevision}`;
  }

  private emit(name: PluginName): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(name);
      } catch (err) {
        this.logger.error({
          plugin: name,
          event: 'secret_change_listener_failed',
          reason: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }
}

/** The key names an environment variable a plugin may receive (CONTRACT.md §1). */
function assertKeyFormat(key: string): void {
  // The key is echoed only once it is known to be a well-formed name, never arbitrary input.
  if (!SECRET_KEY_PATTERN.test(key))
    throw new BadRequestException(`key must match ${SECRET_KEY_PATTERN.source}`);
  if (isReservedSecretKey(key))
    throw new BadRequestException(`key ${key} is a reserved variable name`);
}

function validateValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new BadRequestException('value must be a string');
  if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_MAX_BYTES)
    throw new BadRequestException(`value must be at most ${SECRET_VALUE_MAX_BYTES} bytes`);
  if (value.includes('\0')) throw new BadRequestException('value must not contain NUL characters');
}
