import { ValidateBy, ValidationArguments, ValidationOptions } from 'class-validator';

import { isPluginName, PLUGIN_NAME_PATTERN } from '../shared/plugin.types';
import {
  PLUGIN_NAME_MAX_LENGTH,
  RESERVED_SECRET_KEY_PREFIXES,
  RESERVED_SECRET_KEYS,
  SECRET_KEY_PATTERN,
} from './manifest.constants';
import { isRelativePluginPath } from './plugin-path';

/** True for a key Portico sets itself or that changes how the process runs (docs/plugin-contract.md §1). */
export function isReservedSecretKey(key: string): boolean {
  return (
    RESERVED_SECRET_KEYS.includes(key) ||
    RESERVED_SECRET_KEY_PREFIXES.some((prefix) => key.startsWith(prefix))
  );
}

/** `^[a-zA-Z0-9_-]+$`, at most 128 characters. */
export function IsPluginName(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isPluginName',
      validator: {
        validate: (value: unknown): boolean => typeof value === 'string' && isPluginName(value),
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'name'} must match ${PLUGIN_NAME_PATTERN.source} and be at most ${PLUGIN_NAME_MAX_LENGTH} characters`,
      },
    },
    options,
  );
}

/** A string with at least one non-blank character. */
export function IsNonEmptyString(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isNonEmptyString',
      validator: {
        validate: (value: unknown): boolean => typeof value === 'string' && value.trim() !== '',
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'value'} must be a non-empty string`,
      },
    },
    options,
  );
}

/** An integer in [min, max]; one constraint so the message never depends on decorator order. */
export function IsIntInRange(
  min: number,
  max: number,
  options?: ValidationOptions,
): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isIntInRange',
      constraints: [min, max],
      validator: {
        validate: (value: unknown): boolean =>
          typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max,
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'value'} must be an integer from ${min} to ${max}`,
      },
    },
    options,
  );
}

/** A file path inside the plugin folder (see isRelativePluginPath). */
export function IsRelativePluginPath(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isRelativePluginPath',
      validator: {
        validate: (value: unknown): boolean =>
          typeof value === 'string' && isRelativePluginPath(value),
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'path'} must be a relative path inside the plugin folder`,
      },
    },
    options,
  );
}

/** An environment variable name a plugin may receive a secret in. */
export function IsSecretKey(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isSecretKey',
      validator: {
        validate: (value: unknown): boolean =>
          typeof value === 'string' &&
          SECRET_KEY_PATTERN.test(value) &&
          !isReservedSecretKey(value),
        defaultMessage: (args?: ValidationArguments): string => {
          const value: unknown = args?.value;
          return typeof value === 'string' && SECRET_KEY_PATTERN.test(value)
            ? `key must not be a reserved variable name (${value})`
            : `key must match ${SECRET_KEY_PATTERN.source}`;
        },
      },
    },
    options,
  );
}

/** An array whose object items have distinct values of `field` (items of other shapes pass). */
export function IsUniqueBy(field: string, options?: ValidationOptions): PropertyDecorator {
  const valueOf = (item: unknown): unknown =>
    typeof item === 'object' && item !== null
      ? (item as Record<string, unknown>)[field]
      : undefined;
  const firstDuplicate = (value: unknown): unknown => {
    if (!Array.isArray(value)) return undefined;
    const seen = new Set<unknown>();
    for (const item of value) {
      const v = valueOf(item);
      if (v === undefined) continue;
      if (seen.has(v)) return v;
      seen.add(v);
    }
    return undefined;
  };
  return ValidateBy(
    {
      name: 'isUniqueBy',
      constraints: [field],
      validator: {
        validate: (value: unknown): boolean => firstDuplicate(value) === undefined,
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'array'} has a duplicate ${field} ${String(firstDuplicate(args?.value))}`,
      },
    },
    options,
  );
}

/** A number not smaller than the sibling property `other` when both are set. */
export function IsNotLessThan(other: string, options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isNotLessThan',
      constraints: [other],
      validator: {
        validate: (value: unknown, args?: ValidationArguments): boolean => {
          const bound = (args?.object as Record<string, unknown> | undefined)?.[other];
          return typeof value !== 'number' || typeof bound !== 'number' || value >= bound;
        },
        defaultMessage: (args?: ValidationArguments): string =>
          `${args?.property ?? 'value'} must not be less than ${other}`,
      },
    },
    options,
  );
}
