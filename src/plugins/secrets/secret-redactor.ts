import { REDACT_MIN_LENGTH, REDACTED } from './secrets.constants';

interface Needle {
  readonly text: string;
  /** Smallest period: two occurrences of the needle can't start closer together than this. */
  readonly period: number;
  /** KMP failure function of `text`, to find a needle cut off at the end of a truncated line. */
  readonly fail: Int32Array;
}

/**
 * Replaces every occurrence of a set of secret values in a text with `[REDACTED]`: the values
 * themselves and the forms they are commonly printed in (base64, base64url, URL-encoded,
 * JSON-escaped). Occurrences may overlap (values sharing characters, one value inside another,
 * a value repeated); every character covered by any occurrence is hidden, and each covered run
 * becomes one marker. Values shorter than 4 characters are not redacted.
 *
 * Cost: one native `indexOf` scan of the text per needle, so needles × text length for real
 * secrets; overlapping repeats of one needle are found by stepping by its smallest period, and
 * the covered ranges go into one array the size of the text, however many matches there are.
 */
export class SecretRedactor {
  private readonly needles: Needle[];

  public constructor(values: Iterable<string>) {
    const texts = new Set<string>();
    for (const value of values) {
      if (value.length < REDACT_MIN_LENGTH) continue;
      for (const form of printedForms(value)) if (form.length >= REDACT_MIN_LENGTH) texts.add(form);
    }
    this.needles = [...texts].map((text) => {
      const fail = failureFunction(text);
      return { text, fail, period: text.length - (fail[text.length] as number) };
    });
  }

  public get empty(): boolean {
    return this.needles.length === 0;
  }

  /**
   * `cutAtEnd`: the text is the start of a longer line that was cut off, so a value may have
   * been cut in two; a tail of 4 or more characters that begins some value is hidden too.
   */
  public redact(text: string, cutAtEnd = false): string {
    if (this.needles.length === 0) return text;
    let cover: Int32Array | undefined;
    if (cutAtEnd) {
      for (const needle of this.needles) {
        const k = cutPrefixLength(text, needle);
        if (k < REDACT_MIN_LENGTH) continue;
        cover ??= new Int32Array(text.length + 1);
        cover[text.length - k] += 1;
        cover[text.length] -= 1;
      }
    }
    for (const { text: needle, period } of this.needles) {
      if (needle.length > text.length) continue;
      let at = text.indexOf(needle);
      while (at !== -1) {
        cover ??= new Int32Array(text.length + 1);
        cover[at] += 1;
        cover[at + needle.length] -= 1;
        at = text.indexOf(needle, at + period);
      }
    }
    if (cover === undefined) return text;
    let out = '';
    let depth = 0;
    let plainFrom = 0;
    for (let i = 0; i < text.length; i++) {
      const before = depth;
      depth += cover[i];
      if (before === 0 && depth > 0) {
        out += text.slice(plainFrom, i) + REDACTED;
      } else if (before > 0 && depth === 0) {
        plainFrom = i;
      }
    }
    return depth > 0 ? out : out + text.slice(plainFrom);
  }
}

/** The value and the encodings a program is likely to print it in. */
function printedForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms = [
    value,
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url'),
    encodeURIComponent(value),
    JSON.stringify(value).slice(1, -1),
  ];
  return [...new Set(forms)];
}

/** KMP failure function: `fail[i]` is the longest proper border of `s.slice(0, i)`. */
function failureFunction(s: string): Int32Array {
  const fail = new Int32Array(s.length + 1);
  fail[0] = -1;
  let k = -1;
  for (let i = 0; i < s.length; i++) {
    while (k >= 0 && s[k] !== s[i]) k = fail[k] as number;
    k += 1;
    fail[i + 1] = k;
  }
  return fail;
}

/**
 * Length of the longest proper prefix of the needle that `text` ends with: KMP matching over
 * the last `needle.length - 1` characters of `text`, so linear in the needle's length.
 */
function cutPrefixLength(text: string, { text: needle, fail }: Needle): number {
  let k = 0;
  for (let i = Math.max(0, text.length - needle.length + 1); i < text.length; i++) {
    while (k >= 0 && needle[k] !== text[i]) k = fail[k] as number;
    k += 1;
    if (k === needle.length) k = fail[k] as number; // a whole value is found by indexOf
  }
  return k;
}
