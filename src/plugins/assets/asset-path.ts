/** `%5c` (\) and `%00` (NUL) can only be attempts to smuggle a separator or a terminator. */
const ENCODED_BACKSLASH_OR_NUL = /%(?:5c|00)/i;

/**
 * Turns the route's wildcard parameter into a relative path inside the plugin folder, or undefined
 * for anything that tries to leave it. Express 5 hands the wildcard over as an array of decoded
 * segments (older setups as one string); `rawUrl` is the undecoded request URL, checked for an
 * encoded backslash or NUL that decoding would have hidden inside a segment.
 *
 * An encoded slash is a separator like any other: CloudCLI's host requests a plugin's entry as
 * one percent-encoded segment (`assets/dist%2Findex.js`), so each decoded segment is split at
 * `/` again and every resulting part is checked the same way (no `..`, no empty part, nothing
 * absolute). The caller then confines the result to the plugin folder by its real path.
 */
export function toAssetPath(wildcard: unknown, rawUrl: string): string | undefined {
  const rawPath = rawUrl.split('?', 1)[0];
  if (ENCODED_BACKSLASH_OR_NUL.test(rawPath)) return undefined;
  const segments: unknown[] | undefined = Array.isArray(wildcard)
    ? wildcard
    : typeof wildcard === 'string'
      ? [wildcard]
      : undefined;
  if (segments === undefined) return undefined;
  const kept: string[] = [];
  for (const segment of segments) {
    if (typeof segment !== 'string') return undefined;
    for (const part of segment.split('/')) {
      // An empty part is `//`, a leading or a trailing `/`: an absolute path or a folder.
      if (part === '' || part === '..') return undefined;
      if (/[\\\0]/.test(part)) return undefined;
      if (part !== '.') kept.push(part);
    }
  }
  return kept.length > 0 ? kept.join('/') : undefined;
}
