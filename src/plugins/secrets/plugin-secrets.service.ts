import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';

import { SECRET_KEY_PATTERN } from '../manifest/manifest.constants';
import { isReservedSecretKey } from '../manifest/manifest.validators';
import { PorticoConfig } from '../../config/portico-config';
import { PluginRegistry } from '../manifest/plugin-registry.service';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import type { PluginName } from '../shared/plugin.types';
import { missingRequired, secretHeaders, spawnSecrets } from './secret-resolver';
import { SecretRedaction } from './secret-redaction.service';
import { SecretSources } from './secret-sources.service';
import { SecretStoreCorruptError } from './secret-store-corrupt.error';
import type { SecretView } from './secret-view';
import { SECRET_VALUE_MAX_BYTES } from './secrets.constants';

type SecretChangeListener = (name: PluginName) => void;

/**
 * Each plugin's secrets (docs/plugin-contract.md §7), as the rest of the host sees them: a
 * plugin's own values at spawn (`envFor`) and on RPC requests (`headersFor`), redaction of its
 * output, admin writes, and change events so its server can be restarted. The work is done by
 * SecretSources (store and mounted files, and which wins) and SecretRedaction; this class checks
 * requests and answers with PluginException. No value ever appears in an error or a log.
 */
@Injectable()
export class PluginSecretsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PluginSecretsService.name);
  private readonly listeners = new Set<SecretChangeListener>();
  private stopWatching: (() => void) | undefined;
  private stopWatchingStore: (() => void) | undefined;

  public constructor(
    private readonly sources: SecretSources,
    private readonly redaction: SecretRedaction,
    private readonly registry: PluginRegistry,
    private readonly config: PorticoConfig,
  ) {}

  /** Reads the store and starts following PLUGIN_SECRETS_DIR and the other replicas' writes. */
  public onModuleInit(): void | Promise<void> {
    const loading = this.sources.load();
    if (loading instanceof Promise) return loading.then(() => this.follow());
    this.follow();
  }

  public onModuleDestroy(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.stopWatchingStore?.();
    this.stopWatchingStore = undefined;
  }

  /** The plugin's declared secrets with whether and where each is set; never a value. */
  public list(name: PluginName): SecretView[] {
    return this.sources.resolve(name).map(({ key, required, value, source }) => ({
      key,
      required,
      set: value !== undefined,
      source,
    }));
  }

  /**
   * The plugin's own secret values, by key, to add to its environment at spawn; reads the
   * latest files and store first. PluginException SECRETS_UNAVAILABLE when a required value is
   * missing or a value it may need is in a store that can't be read.
   */
  public envFor(name: PluginName): Record<string, string> {
    // The process about to start gets the current files: no restart needed for this change.
    this.sources.refresh(name);
    const secrets = spawnSecrets(this.sources.resolve(name));
    if (!secrets.ok)
      throw new PluginException(PluginExceptionCode.SECRETS_UNAVAILABLE, secrets.reason);
    return secrets.env;
  }

  /** `x-plugin-secret-<lower-cased key>` for each set secret a header can carry. */
  public headersFor(name: PluginName): Record<string, string> {
    return secretHeaders(this.sources.resolve(name));
  }

  /** Declared required keys that have no usable value. */
  public missingRequired(name: PluginName): string[] {
    return missingRequired(this.sources.resolve(name));
  }

  /** Stores a value (400 invalid, 404 unknown plugin, 409 no or corrupt store); tells listeners. */
  public async set(name: PluginName, key: string, value: string): Promise<void> {
    this.registry.require(name);
    this.requireApiManaged();
    assertKeyFormat(key);
    if (!this.sources.declaredKeys(name).includes(key)) throw undeclared(name, key);
    validateValue(value);
    this.requireWritable();
    try {
      await this.sources.write(name, key, value);
    } catch (err) {
      throw storeFailure(err, 'the value was not saved');
    }
    this.emit(name);
  }

  /**
   * Removes a stored value (404 if none is stored); a value from a mounted file can't be
   * deleted here (409). Listeners are told.
   */
  public async delete(name: PluginName, key: string): Promise<void> {
    this.registry.require(name);
    this.requireApiManaged();
    assertKeyFormat(key);
    this.requireWritable();
    // A stored value of a key the manifest no longer declares can still be removed.
    if (!this.sources.declaredKeys(name).includes(key) && !this.sources.isStored(name, key))
      throw undeclared(name, key);
    let removed: boolean;
    try {
      removed = await this.sources.remove(name, key);
    } catch (err) {
      throw storeFailure(err, 'nothing was deleted');
    }
    if (removed) {
      this.emit(name);
      return;
    }
    if (this.sources.refreshMounted(name)) this.mountedChanged(name);
    if (this.sources.isMounted(name, key))
      throw new PluginException(
        PluginExceptionCode.CONFLICT,
        `secret ${key} comes from a mounted file; remove it from PLUGIN_SECRETS_DIR instead`,
      );
    throw new PluginException(PluginExceptionCode.SECRET_NOT_SET, `secret ${key} is not set`);
  }

  /**
   * Keeps `values`, the secrets a process of the plugin was given at spawn, redacted from the
   * plugin's output until the returned function is called, even after they were rotated or
   * deleted: its owner calls it once that process has exited and its output has ended, so
   * nothing the old process prints while stopping leaks. Calling it again is a no-op.
   */
  public hold(name: PluginName, values: Iterable<string>): () => void {
    return this.redaction.hold(name, values);
  }

  /**
   * The line with every value of the plugin's secrets (and their encodings) hidden: its current
   * values and those its processes still hold (`hold`); `cutAtEnd` when the line was truncated,
   * so a value cut in two at its end is hidden too.
   */
  public redact(name: PluginName, line: string, cutAtEnd = false): string {
    return this.redaction.redact(name, line, cutAtEnd);
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

  private follow(): void {
    this.stopWatching ??= this.sources.watchMounted((name) => this.mountedChanged(name));
    this.stopWatchingStore ??= this.sources.watchStore((names) => {
      for (const name of names) {
        this.logger.log({ plugin: name, event: 'stored_secrets_changed' });
        this.emit(name);
      }
    });
  }

  private mountedChanged(name: PluginName): void {
    this.logger.log({ plugin: name, event: 'mounted_secrets_changed' });
    this.emit(name);
  }

  /**
   * PLUGINS_CONFIG means several replicas without a shared store: a value stored through one of
   * them would live in its DATA_DIR only, and the others would run the plugin without it.
   * Mounted files are shared (and DATABASE_URL keeps the store in the database, shared too).
   */
  private requireApiManaged(): void {
    if (this.config.PLUGINS_CONFIG !== undefined)
      throw new PluginException(
        PluginExceptionCode.CONFLICT,
        'secrets cannot be changed through the API while PLUGINS_CONFIG is set (the value would ' +
          "stay in this replica's DATA_DIR): mount them under PLUGIN_SECRETS_DIR, or keep state " +
          'in a database (DATABASE_URL) instead',
      );
  }

  private requireWritable(): void {
    if (!this.sources.writable)
      throw new PluginException(
        PluginExceptionCode.SECRETS_UNAVAILABLE,
        'secret store is unavailable: SECRETS_KEY is not set',
      );
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

function invalid(message: string): PluginException {
  return new PluginException(PluginExceptionCode.INVALID_REQUEST, message);
}

function undeclared(name: PluginName, key: string): PluginException {
  return invalid(`plugin ${name} does not declare a secret ${key}`);
}

/** The key names an environment variable a plugin may receive (docs/plugin-contract.md §1). */
function assertKeyFormat(key: string): void {
  // The key is echoed only once it is known to be a well-formed name, never arbitrary input.
  if (!SECRET_KEY_PATTERN.test(key)) throw invalid(`key must match ${SECRET_KEY_PATTERN.source}`);
  if (isReservedSecretKey(key)) throw invalid(`key ${key} is a reserved variable name`);
}

function validateValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw invalid('value must be a string');
  if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_MAX_BYTES)
    throw invalid(`value must be at most ${SECRET_VALUE_MAX_BYTES} bytes`);
  if (value.includes('\0')) throw invalid('value must not contain NUL characters');
}

/** 409 for a corrupt store; anything else (disk full, ...) stays what it is, a 500. */
function storeFailure(err: unknown, consequence: string): unknown {
  if (!(err instanceof SecretStoreCorruptError)) return err;
  return new PluginException(
    PluginExceptionCode.SECRETS_UNAVAILABLE,
    `${err.message}; ${consequence}`,
  );
}
