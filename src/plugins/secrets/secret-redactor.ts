import { wellFormed } from '../../common/well-formed';
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
 * themselves and the forms they are commonly printed in (`printedForms`: base64 and base64url
 * at every byte offset, URL-encoded, JSON-escaped, hex). Occurrences may overlap (values sharing
 * characters, one value inside another, a value repeated); every character covered by any
 * occurrence is hidden, and each covered run becomes one marker. Values shorter than 4
 * characters are not redacted.
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

/**
 * The value and the encodings a program is likely to print it in: as is; its UTF-8 bytes in
 * base64 and base64url, on their own (unpadded) and inside a longer encoding at each of the 3
 * byte offsets (a password in a Basic auth header is base64 of `user:password`); URL-encoded
 * (encodeURIComponent, and form encoding with `+` for spaces); JSON-escaped (as is, and with
 * every non-ASCII character as `\uXXXX`); hex in lower and upper case.
 */
function printedForms(value: string): string[] {
  // A process gets its environment as UTF-8, where a lone surrogate arrives as U+FFFD.
  const printed = wellFormed(value);
  const bytes = Buffer.from(printed, 'utf8');
  const json = JSON.stringify(printed).slice(1, -1);
  const base64 = [bytes.toString('base64').replace(/=+$/, ''), ...embeddedBase64(bytes)];
  const forms = [
    value,
    printed,
    ...base64,
    ...base64.map((b) => b.replace(/\+/g, '-').replace(/\//g, '_')),
    encodeURIComponent(printed),
    new URLSearchParams({ v: printed }).toString().slice('v='.length),
    json,
    json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
  ];
  return [...new Set(forms)];
}

/**
 * For each of the 3 byte offsets the value can start at inside a longer base64-encoded input,
 * the characters of the encoding made of its own bits only, which are the same whatever
 * surrounds it: encode it after 0, 1 or 2 other bytes and cut off the characters that mix in
 * a neighbour's bits.
 */
function embeddedBase64(bytes: Buffer): string[] {
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const from = Math.ceil((8 * offset) / 6);
    const to = Math.floor((8 * (offset + bytes.length)) / 6);
    if (to > from) forms.push(encoded.slice(from, to));
  }
  return forms;
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
