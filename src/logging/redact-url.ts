const TOKEN_PARAM = /([?&]token=)[^&#]*/gi;

/** Replaces the value of every `token` query parameter so URLs can be logged. */
export function redactUrl(url: string): string {
  return url.replace(TOKEN_PARAM, '$1[REDACTED]');
}
