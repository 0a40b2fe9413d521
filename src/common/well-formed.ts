/** Any UTF-16 surrogate: a quick test before the costlier LONE_SURROGATE replace. */
const SURROGATE = /[\ud800-\udfff]/;
/** A lone UTF-16 surrogate, which UTF-8 (and so percent-encoding) cannot carry. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * `value` with each lone surrogate (possible in JSON, a JWT's claims say) as U+FFFD, as UTF-8
 * encoding makes it. Almost every value has no surrogate at all, and skips the lookbehind.
 */
export function wellFormed(value: string): string {
  return SURROGATE.test(value) ? value.replace(LONE_SURROGATE, '\ufffd') : value;
}
