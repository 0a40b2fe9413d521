import { plainToInstance } from 'class-transformer';
import { ValidationError, validateSync } from 'class-validator';

import { isPluginName, PluginName } from '../shared/plugin.types';
import { MANIFEST_FILE } from './manifest.constants';
import { ManifestDto } from './manifest.dto';

/** A valid manifest, or a one-line reason it is not (with its name when that part is valid). */
export type ManifestParseResult =
  { readonly manifest: ManifestDto } | { readonly error: string; readonly name?: PluginName };

/** Messages beyond this many are summarised so the reason stays one readable line. */
const MAX_REASONS = 5;

/**
 * Parses and validates the text of a manifest.json. Pure: whether `entry` and `server` exist on
 * disk is checked by the registry.
 */
export function parseManifest(json: string): ManifestParseResult {
  let raw: unknown;
  try {
    // Editors on Windows like to start files with a byte-order mark, which JSON.parse rejects.
    raw = JSON.parse(json.replace(/^\uFEFF/, ''), nullMeansAbsent);
  } catch (err) {
    return { error: `${MANIFEST_FILE}: invalid JSON (${oneLine((err as Error).message)})` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { error: `${MANIFEST_FILE}: must be a JSON object` };
  }
  const manifest = plainToInstance(ManifestDto, raw, {
    excludeExtraneousValues: true,
    exposeUnsetFields: false,
  });
  const errors = validateSync(manifest, { stopAtFirstError: true, forbidUnknownValues: true });
  if (errors.length === 0) return { manifest };
  const declared = (raw as Record<string, unknown>).name;
  const reasons = describeValidationErrors(errors);
  const shown = reasons.slice(0, MAX_REASONS);
  if (reasons.length > MAX_REASONS) shown.push(`and ${reasons.length - MAX_REASONS} more`);
  return {
    error: `${MANIFEST_FILE}: ${oneLine(shown.join('; '))}`,
    ...(typeof declared === 'string' && isPluginName(declared) ? { name: declared } : {}),
  };
}

/** Flattens nested errors into messages that name the full property path (`secrets[0].key`). */
export function describeValidationErrors(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((error) => {
    const path =
      parent === ''
        ? error.property
        : /^\d+$/.test(error.property)
          ? `${parent}[${error.property}]`
          : `${parent}.${error.property}`;
    const own = Object.entries(error.constraints ?? {}).map(([constraint, message]) =>
      constraint === 'nestedValidation'
        ? `${path} must be an object`
        : constraint === 'whitelistValidation'
          ? `${path}: unknown field`
          : parent === ''
            ? message
            : message.startsWith(`${error.property} `)
              ? `${path}${message.slice(error.property.length)}`
              : `${path}: ${message}`,
    );
    return [...own, ...describeValidationErrors(error.children ?? [], path)];
  });
}

/** JSON.parse reviver: `"server": null` reads as no server (an array's null stays an error). */
function nullMeansAbsent(this: unknown, _key: string, value: unknown): unknown {
  return value === null && !Array.isArray(this) ? undefined : value;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
