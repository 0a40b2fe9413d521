/** `%2f` (/), `%5c` (\) and `%00` (NUL) can only be attempts to smuggle a separator past routing. */
const ENCODED_SEPARATOR_OR_NUL = /%(?:2f|5c|00)/i;

/**
 * Turns the route's wildcard parameter into a relative path inside the plugin folder, or undefined
 * for anything that tries to leave it. Express 5 hands the wildcard over as an array of decoded
 * segments (older setups as one string); `rawUrl` is the undecoded request URL, checked for
 * encoded separators that decoding would have hidden inside a segment.
 */
export function toAssetPath(wildcard: unknown, rawUrl: string): string | undefined {
  const rawPath = rawUrl.split('?', 1)[0];
  if (ENCODED_SEPARATOR_OR_NUL.test(rawPath)) return undefined;
  const segments: unknown[] | undefined = Array.isArray(wildcard)
    ? wildcard
    : typeof wildcard === 'string'
      ? wildcard.split('/')
      : undefined;
  if (segments === undefined) return undefined;
  const kept: string[] = [];
  for (const segment of segments) {
    if (typeof segment !== 'string') return undefined;
    // An empty segment is `//` or a leading `/`, i.e. an absolute path.
    if (segment === '' || segment === '..') return undefined;
    if (/[/\\\0]/.test(segment)) return undefined;
    if (segment !== '.') kept.push(segment);
  }
  return kept.length > 0 ? kept.join('/') : undefined;
}
