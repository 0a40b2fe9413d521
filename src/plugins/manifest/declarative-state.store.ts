import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

import { Logger } from '@nestjs/common';

import { ConfigException, ConfigExceptionCode } from '../../config/config.exception';
import { PorticoMetrics } from '../../metrics/portico-metrics';
import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import type { PluginName } from '../shared/plugin.types';
import type { PluginState, PluginStateSource, PluginStateStore } from './plugin-state.store';
import {
  configGeneration,
  parsePluginsConfig,
  PluginsConfig,
  PLUGINS_CONFIG_MAX_BYTES,
} from './plugins-config';

/**
 * Plugin state declared in the PLUGINS_CONFIG file, the source of truth for every replica
 * (docs/operations.md, "Declarative plugin config"). Nothing writes it but the operator: `save`
 * is refused (409 naming the file). The file is re-read every `pollMs`; reading the path again
 * follows a kubelet `..data` symlink swap, which an inotify watch on the file would miss. A new
 * valid content replaces the config in force and `watch` callers are told; an invalid one is
 * logged once, counted, shown by `describe`, and the last good config stays in force.
 */
export class DeclarativePluginStateStore implements PluginStateStore {
  private readonly logger = new Logger('PluginsConfig');
  /** The last good config: the one in force. */
  private config: PluginsConfig;
  /** Generation of the content read last, good or not: unchanged bytes are not parsed again. */
  private seen: number;
  private lastError: string | undefined;
  private polling = false;

  private constructor(
    private readonly file: string,
    private readonly pollMs: number,
    private readonly metrics: PorticoMetrics,
    initial: PluginsConfig,
  ) {
    this.config = initial;
    this.seen = initial.generation;
    this.report();
  }

  /**
   * Reads and validates the file once. A missing or invalid file at startup is a
   * ConfigException naming PLUGINS_CONFIG (exit 78): there is no last good config to keep.
   */
  public static async open(
    file: string,
    pollMs: number,
    metrics: PorticoMetrics,
  ): Promise<DeclarativePluginStateStore> {
    const read = parseRead(await readConfig(file));
    if ('error' in read)
      throw new ConfigException(
        ConfigExceptionCode.INVALID_VALUE,
        `Invalid configuration:\n  PLUGINS_CONFIG: ${file}: ${read.error}`,
      );
    const store = new DeclarativePluginStateStore(file, pollMs, metrics, read.config);
    store.logger.log({
      event: 'plugins_config_applied',
      file,
      generation: read.config.generation,
      plugins: read.config.plugins.size,
    });
    return store;
  }

  public load(): Promise<Map<PluginName, PluginState>> {
    return Promise.resolve(new Map(this.config.plugins));
  }

  public save(): Promise<void> {
    return Promise.reject(
      new PluginException(
        PluginExceptionCode.CONFLICT,
        `plugin state is managed by PLUGINS_CONFIG (${this.file}): change that file instead`,
      ),
    );
  }

  public watch(onChange: () => void): () => void {
    const timer = setInterval(() => {
      // poll() never rejects: a failed read is an invalid config, logged and kept out of force.
      void this.poll().then((changed) => {
        if (changed) onChange();
      });
    }, this.pollMs);
    // The watch alone never keeps the host running.
    timer.unref();
    return () => clearInterval(timer);
  }

  public describe(): PluginStateSource {
    return {
      source: 'PLUGINS_CONFIG',
      file: this.file,
      generation: this.config.generation,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  /** Reads the file now; true when a new valid config came into force. */
  public async poll(): Promise<boolean> {
    if (this.polling) return false;
    this.polling = true;
    try {
      // Unchanged bytes are not parsed again: parsing is the expensive part, hashing is not.
      const bytes = await readConfig(this.file);
      if (bytes.generation === this.seen) return false;
      this.seen = bytes.generation;
      const read = parseRead(bytes);
      if ('error' in read) {
        this.lastError = read.error;
        this.metrics.configReloadFailures.inc();
        this.logger.error({
          event: 'plugins_config_invalid',
          file: this.file,
          reason: read.error,
          kept: this.config.generation,
        });
        this.report();
        return false;
      }
      const recovered = this.lastError !== undefined;
      this.lastError = undefined;
      const changed = read.config.generation !== this.config.generation;
      this.config = read.config;
      this.report();
      if (!changed && recovered)
        this.logger.log({
          event: 'plugins_config_recovered',
          file: this.file,
          generation: read.config.generation,
        });
      if (changed)
        this.logger.log({
          event: 'plugins_config_applied',
          file: this.file,
          generation: read.config.generation,
          plugins: read.config.plugins.size,
        });
      return changed;
    } finally {
      this.polling = false;
    }
  }

  private report(): void {
    this.metrics.configGeneration.set(this.config.generation);
    this.metrics.configValid.set(this.lastError === undefined ? 1 : 0);
  }
}

/** A file that cannot be read has no bytes: its "generation" is that of its reason instead. */
function unreadable(reason: string): { error: string; generation: number } {
  return { error: reason, generation: configGeneration(Buffer.from(`\0unreadable: ${reason}`)) };
}

type ConfigBytes =
  | { readonly bytes: Buffer; readonly generation: number }
  | { readonly error: string; readonly generation: number };

type ConfigRead =
  | { readonly config: PluginsConfig; readonly generation: number }
  | { readonly error: string; readonly generation: number };

/** The file's bytes and their generation, or why it cannot be read. Never rejects. */
async function readConfig(file: string): Promise<ConfigBytes> {
  let bytes: Buffer;
  try {
    // Opened once, so the size checked is the size of the file read (kubelet swaps files).
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, holding a libuv thread
    // and every later poll; it is refused below as not a regular file.
    const handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) return unreadable('not a regular file');
      if (stats.size > PLUGINS_CONFIG_MAX_BYTES)
        return unreadable(`larger than ${PLUGINS_CONFIG_MAX_BYTES} bytes`);
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return unreadable(`cannot be read (${code})`);
  }
  return { bytes, generation: configGeneration(bytes) };
}

function parseRead(read: ConfigBytes): ConfigRead {
  if ('error' in read) return read;
  const parsed = parsePluginsConfig(read.bytes);
  return 'error' in parsed
    ? parsed
    : { config: parsed.config, generation: parsed.config.generation };
}
