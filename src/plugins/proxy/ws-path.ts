import { stripTokenQuery } from '../../auth/credential-extractor';

/** A dot segment, raw or percent-encoded in any case: `.`, `%2e`, `..`, `.%2E`, … */
const DOT = /^(?:\.|%2e)$/i;
const DOT_DOT = /^(?:\.|%2e){2}$/i;
/** Encoded `/`, `\` and NUL: a plugin decoding its path would see separators no one checked. */
const ENCODED_SEPARATOR = /%(?:2f|5c|00)/i;

/**
 * The request target a plugin gets for a proxied WebSocket (docs/plugin-contract.md §4): `/ws` plus the
 * client's sub-path with dot segments (raw or encoded, `/` or `\` separated, as WHATWG URL
 * parsers read them) resolved, plus the query without `token`. Undefined when the sub-path would
 * climb out of `/ws` or hides a separator in an escape: the handshake is refused (400).
 */
export function upstreamWsPath(
  subPath: string | undefined,
  query: string | undefined,
): string | undefined {
  const tail = query === undefined ? '' : stripTokenQuery(query);
  if (subPath === undefined || subPath.length === 0) return `/ws${tail}`;
  if (ENCODED_SEPARATOR.test(subPath)) return undefined;
  const segments: string[] = [];
  const parts = subPath.split(/[/\\]/).slice(1);
  let trailingSlash = false;
  for (const part of parts) {
    trailingSlash = false;
    if (DOT.test(part)) {
      trailingSlash = true;
    } else if (DOT_DOT.test(part)) {
      if (segments.length === 0) return undefined;
      segments.pop();
      trailingSlash = true;
    } else segments.push(part);
  }
  let path = '/ws';
  if (segments.length > 0) path += `/${segments.join('/')}`;
  if (trailingSlash && segments.length > 0) path += '/';
  return path + tail;
}
