import { Injectable } from '@nestjs/common';

import type { PluginName } from '../shared/plugin.types';
import { SecretRedactor } from './secret-redactor';
import { SecretSources } from './secret-sources.service';

/**
 * Hides each plugin's secret values in its output (docs/plugin-contract.md §7): its current
 * values, and those its processes were given and may still print (`hold`), even after they were
 * rotated away or deleted. One SecretRedactor per plugin, rebuilt only when a value or a hold
 * changed, since every output line of the plugin goes through it.
 */
@Injectable()
export class SecretRedaction {
  private readonly redactors = new Map<
    PluginName,
    { revision: string; redactor: SecretRedactor }
  >();
  /** Values handed to processes that may still print them, per plugin. */
  private readonly holds = new Map<PluginName, Set<readonly string[]>>();
  private holdsRevision = 0;

  public constructor(private readonly sources: SecretSources) {}

  /**
   * Keeps `values` redacted from the plugin's output until the returned function is called;
   * calling it again is a no-op. Holds of the same value by several processes are independent.
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

  /** The line with the plugin's current and held values hidden (SecretRedactor.redact). */
  public redact(name: PluginName, line: string, cutAtEnd = false): string {
    const revision = `${this.sources.revision}:${this.holdsRevision}`;
    let cached = this.redactors.get(name);
    if (cached?.revision !== revision) {
      const values = [...this.sources.values(name), ...[...(this.holds.get(name) ?? [])].flat()];
      cached = { revision, redactor: new SecretRedactor(values) };
      this.redactors.set(name, cached);
    }
    return cached.redactor.redact(line, cutAtEnd);
  }
}
