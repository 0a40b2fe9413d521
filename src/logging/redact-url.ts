import { TOKEN_QUERY_PARAM } from '../auth/credential-extractor';

const REDACTED = '[REDACTED]';

/**
 * Query parameters whose values are credentials: `token` (docs/plugin-contract.md §5) and the
 * OpenID authorization `code` Portico's sign-in callback receives.
 */
const REDACTED_PARAMS: ReadonlySet<string> = new Set([TOKEN_QUERY_PARAM, 'code']);
const SHORTEST_REDACTED = Math.min(...[...REDACTED_PARAMS].map((name) => name.length));

/** One `name=value` pair of a query or fragment; a value ends at `&` or `#`. */
const PAIR = /([?&#])([^&#=]*)=[^&#]*/g;

/**
 * The URL with the value of every `token` (and `code`) query parameter replaced by `[REDACTED]`,
 * so it can be logged. A name counts as `token` when it reads as `token` the way the credential extractor
 * (URLSearchParams) reads it: percent-escapes decoded (`%74oken`, `tok%65n`), `+` as a space,
 * malformed escapes kept as they are; in any letter case and with surrounding spaces too, which
 * is more than authenticates but costs a log nothing. Pairs after a `#` are treated the same.
 */
export function redactUrl(url: string): string {
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return url;
  const query = url
    .slice(queryAt)
    .replace(PAIR, (pair, separator: string, name: string) =>
      isTokenName(name) ? `${separator}${name}=${REDACTED}` : pair,
    );
  return url.slice(0, queryAt) + query;
}

function isTokenName(raw: string): boolean {
  // Decoding never makes a name longer, and a name without `%` or `+` decodes to itself.
  if (raw.length < SHORTEST_REDACTED) return false;
  const decoded = /[%+]/.test(raw) ? decodeName(raw) : raw;
  return REDACTED_PARAMS.has(decoded.trim().toLowerCase());
}

/** The name exactly as URLSearchParams decodes it; it never throws on malformed escapes. */
function decodeName(raw: string): string {
  for (const [name] of new URLSearchParams(`${raw}=`)) return name;
  return raw;
}
