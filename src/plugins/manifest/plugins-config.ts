import { createHash } from 'node:crypto';

import { plainToInstance, Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  ValidateNested,
  validateSync,
} from 'class-validator';
import { LineCounter, parseDocument } from 'yaml';

import { isPluginName, PLUGIN_NAME_PATTERN, PluginName } from '../shared/plugin.types';
import { describeValidationErrors } from './manifest-validator';
import type { PluginState } from './plugin-state.store';
import { RestartPolicyDto } from './restart-policy.dto';

/**
 * A PLUGINS_CONFIG file larger than this is refused. It is a few lines per plugin (64 KiB is
 * over 1,000 plugins), and parsing runs on the event loop: the YAML parser takes about 0.6 s for
 * 64 KiB of entries on a busy core, and a file 16 times larger would stall the host for seconds.
 */
export const PLUGINS_CONFIG_MAX_BYTES = 64 * 1024;

/**
 * Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the parser
 * takes over a second for 60 KB of `[[[…]]]`, and no real config nests more than four levels.
 */
const MAX_FLOW_DEPTH = 32;

/** Same rule as `PUT /api/plugins/:name/access` (SetAccessDto). */
const ROLE_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Messages beyond this many are summarised so the reason stays one readable line. */
const MAX_REASONS = 5;

/** One plugin's entry in PLUGINS_CONFIG; every field optional, any other field an error. */
class PluginConfigEntryDto {
  @IsOptional()
  @IsBoolean()
  public enabled?: boolean;

  // Checked bottom-up and only until the first failure: a string is "not an array" first.
  @IsOptional()
  @ArrayMaxSize(64)
  @Matches(ROLE_PATTERN, {
    each: true,
    message: 'each role must be 1-128 characters of letters, digits, _ . : -',
  })
  @IsString({ each: true })
  @IsArray()
  public roles?: string[];

  @IsOptional()
  @IsObject({ message: 'restart must be a mapping' })
  @ValidateNested()
  @Type(() => RestartPolicyDto)
  public restart?: RestartPolicyDto;
}

/** PLUGINS_CONFIG as applied: each listed plugin's state, and the identity of the bytes. */
export interface PluginsConfig {
  /** Only the plugins the file lists (`enabled` defaults to true, as for an unlisted one). */
  readonly plugins: ReadonlyMap<PluginName, PluginState>;
  /** The first 12 hex digits of the SHA-256 of the file, as a number (equal across replicas). */
  readonly generation: number;
}

export type PluginsConfigParseResult =
  { readonly config: PluginsConfig } | { readonly error: string; readonly generation: number };

/**
 * Parses and validates the bytes of a PLUGINS_CONFIG file (docs/operations.md, "Declarative
 * plugin config"): YAML (so JSON too) of the form `plugins: {<name>: {enabled, roles, restart}}`.
 * Strict, because an operator's typo must not pass silently: unknown keys, duplicate keys and
 * values of the wrong type are errors, and the reason names the path (`plugins.echo.enable`).
 */
export function parsePluginsConfig(bytes: Buffer): PluginsConfigParseResult {
  const generation = configGeneration(bytes);
  const fail = (reason: string): PluginsConfigParseResult => ({ error: reason, generation });
  if (bytes.length > PLUGINS_CONFIG_MAX_BYTES)
    return fail(`larger than ${PLUGINS_CONFIG_MAX_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('not valid UTF-8');
  }
  if (flowDepth(text) > MAX_FLOW_DEPTH)
    return fail(`invalid YAML (nested deeper than ${MAX_FLOW_DEPTH} levels)`);
  // Warnings (a mapping used as a key, an unknown tag) are refused like errors, not logged.
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    uniqueKeys: true,
    prettyErrors: false,
    logLevel: 'silent',
    lineCounter: lines,
  });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const at = lines.linePos(problem.pos[0]);
    const where = ` at line ${at.line}, column ${at.col}`;
    return fail(`invalid YAML${where} (${oneLine(problem.message)})`);
  }
  let raw: unknown;
  try {
    // Aliases are legitimate YAML, but a billion-laughs file must not expand without bound.
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return fail(`invalid YAML (${oneLine((err as Error).message)})`);
  }
  // An empty or truncated file (a writer that is not atomic, a failed template) must not read as
  // "nothing listed", which would enable every plugin for every user: `plugins` is required.
  if (raw === null || raw === undefined)
    return fail('the file is empty: write `plugins: {}` to list no plugin');
  if (!isMapping(raw)) return fail('the top level must be a mapping with a `plugins` key');
  const unknownTop = Object.keys(raw).filter((k) => k !== 'plugins');
  if (unknownTop.length > 0) {
    const shown = unknownTop.slice(0, MAX_REASONS).map((k) => `"${oneLine(k).slice(0, 64)}"`);
    if (unknownTop.length > MAX_REASONS) shown.push(`and ${unknownTop.length - MAX_REASONS} more`);
    return fail(`unknown top-level key ${shown.join(', ')} (only "plugins")`);
  }
  if (!('plugins' in raw)) return fail('`plugins` is required (write `plugins: {}` to list none)');
  const listed = raw.plugins;
  if (!isMapping(listed))
    return fail('plugins must be a mapping of plugin name to settings (`plugins: {}` for none)');

  const reasons: string[] = [];
  const plugins = new Map<PluginName, PluginState>();
  // Object.entries sees `__proto__` as an own key (yaml builds plain objects with define).
  for (const [name, entry] of Object.entries(listed)) {
    if (!isPluginName(name)) {
      reasons.push(`plugins."${name}": not a plugin name (${PLUGIN_NAME_PATTERN.source})`);
      continue;
    }
    const value = entry ?? {};
    if (!isMapping(value)) {
      reasons.push(`plugins.${name} must be a mapping`);
      continue;
    }
    const dto = plainToInstance(PluginConfigEntryDto, value);
    const errors = validateSync(dto, {
      stopAtFirstError: true,
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
    });
    if (errors.length > 0) {
      reasons.push(...describeValidationErrors(errors, `plugins.${name}`));
      continue;
    }
    plugins.set(name, stateOf(dto));
  }
  if (reasons.length > 0) {
    const shown = reasons.slice(0, MAX_REASONS);
    if (reasons.length > MAX_REASONS) shown.push(`and ${reasons.length - MAX_REASONS} more`);
    return fail(oneLine(shown.join('; ')));
  }
  return { config: { plugins, generation } };
}

/** `portico_config_generation`: `printf '%d\n' 0x$(sha256sum FILE | cut -c1-12)`. */
export function configGeneration(bytes: Buffer): number {
  return Number.parseInt(createHash('sha256').update(bytes).digest('hex').slice(0, 12), 16);
}

function stateOf(dto: PluginConfigEntryDto): PluginState {
  const restart =
    dto.restart === undefined
      ? undefined
      : Object.fromEntries(Object.entries(dto.restart).filter(([, v]) => v !== undefined));
  return {
    enabled: dto.enabled ?? true,
    ...(dto.roles !== undefined ? { roles: [...new Set(dto.roles)].sort() } : {}),
    ...(restart !== undefined ? { restart } : {}),
  };
}

/** A plain mapping: not a list, nor what a tag such as `!!binary` or `!!set` builds. */
function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The deepest nesting of `[` and `{`, counted over the whole text. Brackets inside quoted
 * strings or comments count too: the count can only be too high, which errs on the safe side.
 */
function flowDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return max;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
