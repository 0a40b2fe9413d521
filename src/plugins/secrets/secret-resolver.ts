import type { SecretDeclarationDto } from '../manifest/secret-declaration.dto';
import { SECRET_HEADER_MAX_LENGTH, SECRET_HEADER_PREFIX } from './secrets.constants';

/** Where a set value comes from: a mounted file in PLUGIN_SECRETS_DIR, or the encrypted store. */
export type SecretSource = 'file' | 'store';

/** What the encrypted store answers for one key. */
export type StoreLookup =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'absent' }
  /** The store can't be trusted for this key (corrupt, or no SECRETS_KEY); `reason` says why. */
  | { readonly kind: 'unavailable'; readonly reason: string };

/** One declared secret with its value right now, and where that came from. */
export interface ResolvedSecret {
  readonly key: string;
  readonly required: boolean;
  readonly value: string | undefined;
  readonly source: SecretSource | null;
  /** Set when the store was asked and could not answer: the value may exist but is unknown. */
  readonly unavailable?: string;
}

/** A spawn's secret environment, or why the plugin must not start. */
type SpawnSecrets =
  | { readonly ok: true; readonly env: Record<string, string> }
  | { readonly ok: false; readonly reason: string };

/** A header value Node accepts and every proxy passes unchanged: printable ASCII and tab. */
const HEADER_SAFE = /^[\t\x20-\x7e]*$/;

/**
 * The precedence rule (docs/plugin-contract.md §7): a mounted file beats the store, so an
 * operator's volume always wins over a value an admin once set. The store is asked only for keys
 * no file provides, so a corrupt store does not matter to a plugin whose values are all mounted.
 */
export function resolveSecrets(
  declarations: readonly Pick<SecretDeclarationDto, 'key' | 'required'>[],
  mounted: ReadonlyMap<string, string>,
  stored: (key: string) => StoreLookup,
): ResolvedSecret[] {
  return declarations.map(({ key, required }): ResolvedSecret => {
    const base = { key, required: required === true };
    const fromFile = mounted.get(key);
    if (fromFile !== undefined) return { ...base, value: fromFile, source: 'file' };
    const lookup = stored(key);
    switch (lookup.kind) {
      case 'value':
        return { ...base, value: lookup.value, source: 'store' };
      case 'absent':
        return { ...base, value: undefined, source: null };
      case 'unavailable':
        return { ...base, value: undefined, source: null, unavailable: lookup.reason };
    }
  });
}

/** Declared required keys that have no usable value. */
export function missingRequired(resolved: readonly ResolvedSecret[]): string[] {
  return resolved.filter((r) => r.required && r.value === undefined).map((r) => r.key);
}

/**
 * What a plugin's process gets: every set value by key. A plugin is never started without a
 * value it may have had, so an unanswerable store refuses the spawn (first), as does a missing
 * required value.
 */
export function spawnSecrets(resolved: readonly ResolvedSecret[]): SpawnSecrets {
  const unknown = resolved.find((r) => r.unavailable !== undefined);
  if (unknown?.unavailable !== undefined) return { ok: false, reason: unknown.unavailable };
  const missing = missingRequired(resolved);
  if (missing.length > 0)
    return { ok: false, reason: `missing required secrets: ${missing.join(', ')}` };
  const env: Record<string, string> = {};
  for (const { key, value } of resolved) if (value !== undefined) env[key] = value;
  return { ok: true, env };
}

/** `x-plugin-secret-<lower-cased key>` for each set value a header can carry (§5). */
export function secretHeaders(resolved: readonly ResolvedSecret[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const { key, value } of resolved) {
    if (value === undefined || value.length > SECRET_HEADER_MAX_LENGTH) continue;
    if (!HEADER_SAFE.test(value)) continue;
    headers[SECRET_HEADER_PREFIX + key.toLowerCase()] = value;
  }
  return headers;
}
