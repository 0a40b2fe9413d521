/**
 * Pure rules of single sign-on (docs/operations.md, "Single sign-on"): how the settings are read,
 * how a provider's claims become Portico roles, and which `returnTo` values are allowed.
 */

/** Where the provider sends the browser back; OIDC_REDIRECT_URL must end with it. */
export const OIDC_CALLBACK_PATH = '/api/auth/callback';

/** Scopes from OIDC_SCOPES (space or comma separated), without repeats. */
export function parseScopes(value: string): string[] {
  return [...new Set(value.split(/[\s,]+/).filter((s) => s.length > 0))];
}

/** group → the roles it gives. */
export type RoleMap = ReadonlyMap<string, readonly string[]>;

/** Why OIDC_ROLE_MAP cannot be read (undefined when it can). */
export function roleMapProblem(value: string): string | undefined {
  const bad = entries(value).filter(([group, role]) => group === '' || role === '');
  if (bad.length === 0 && entries(value).length > 0) return undefined;
  return 'must be group=role pairs separated by commas, e.g. portico-admins=admin,developers=terminal';
}

/** OIDC_ROLE_MAP as a map; a group may be given several roles by repeating it. */
export function parseRoleMap(value: string | undefined): RoleMap | undefined {
  if (value === undefined) return undefined;
  const map = new Map<string, string[]>();
  for (const [group, role] of entries(value)) {
    const roles = map.get(group) ?? [];
    if (!roles.includes(role)) roles.push(role);
    map.set(group, roles);
  }
  return map;
}

/** `a=b,c=d` → [[a, b], [c, d]]; the last `=` splits, so a group may itself contain `=`. */
function entries(value: string): [string, string][] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)
    .map((entry) => {
      const at = entry.lastIndexOf('=');
      return at === -1
        ? ([entry, ''] as [string, string])
        : [entry.slice(0, at).trim(), entry.slice(at + 1).trim()];
    });
}

/**
 * The value at a dotted path (`realm_access.roles`) of a claims object. A claim whose own name
 * contains dots (`https://example.com/groups`) is found too: the whole path is tried first.
 */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (path in claims) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Groups in a claim: an array of strings, or one string separated by spaces or commas. */
export function groupsIn(claim: unknown): string[] {
  const raw: unknown[] =
    typeof claim === 'string' ? claim.split(/[\s,]+/) : Array.isArray(claim) ? claim : [];
  return [
    ...new Set(
      raw
        .filter((g): g is string => typeof g === 'string')
        .map((g) => g.trim())
        .filter((g) => g.length > 0),
    ),
  ];
}

/**
 * The Portico roles a user's groups give: through the map when there is one (unmapped groups give
 * nothing), else each group is a role of the same name.
 */
export function rolesFor(groups: readonly string[], map: RoleMap | undefined): string[] {
  if (map === undefined) return [...groups];
  return [...new Set(groups.flatMap((group) => map.get(group) ?? []))];
}

/** Longest `returnTo` kept. */
const MAX_RETURN_TO = 2048;

/**
 * A `returnTo` that certainly stays on this server: a path starting with one `/`, not `//` or
 * `/\` (which browsers read as another host), without control characters, and that resolves to
 * the same origin. Undefined for anything else.
 */
export function safeReturnTo(value: string): string | undefined {
  if (value.length === 0 || value.length > MAX_RETURN_TO) return undefined;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return undefined;
  const base = 'http://portico.invalid';
  let url: URL;
  try {
    url = new URL(value, base);
  } catch {
    return undefined;
  }
  if (url.origin !== base) return undefined;
  return `${url.pathname}${url.search}${url.hash}`;
}
