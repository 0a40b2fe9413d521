import { TOKEN_QUERY_PARAM } from '../auth/credential-extractor';

const REDACTED = '[REDACTED]';

/** One `name=value` pair of a query or fragment; a value ends at `&` or `#`. */
const PAIR = /([?&#])([^&#=]*)=[^&#]*/g;

/**
 * The URL with the value of every `token` query parameter replaced by `[REDACTED]`, so it can be
 * logged. A name counts as `token` when it reads as `token` the way the credential extractor
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
  if (raw.length < TOKEN_QUERY_PARAM.length) return false;
  const decoded = /[%+]/.test(raw) ? decodeName(raw) : raw;
  return decoded.trim().toLowerCase() === TOKEN_QUERY_PARAM;
}

/** The name exactly as URLSearchParams decodes it; it never throws on malformed escapes. */
function decodeName(raw: string): string {
  for (const [name] of new URLSearchParams(`${raw}=`)) return name;
  return raw;
}
