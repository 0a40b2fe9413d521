import { LineSplitter } from '../../../src/plugins/process/line-splitter';

/** Feeds `chunks` to a splitter cutting at `max` and returns every line it reported. */
function split(chunks: (string | Buffer)[], max = 10, end = true): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line), max);
  for (const chunk of chunks) splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  if (end) splitter.end();
  return lines;
}

describe('LineSplitter (plugin stdout/stderr into lines)', () => {
  it('reports each line of a chunk without its newline', () => {
    expect(split(['one\ntwo\n\nthree\n'])).toEqual(['one', 'two', '', 'three']);
  });

  it('joins a line split across chunks, wherever the chunks end', () => {
    expect(split(['he', 'll', 'o\nwor', 'ld\n'])).toEqual(['hello', 'world']);
    expect(split(['a', '\n', 'b\n'])).toEqual(['a', 'b']);
  });

  it('reports nothing until the newline comes', () => {
    expect(split(['partial'], 10, false)).toEqual([]);
  });

  it('ends a line at CRLF too, also when the CR and LF are in different chunks', () => {
    expect(split(['one\r\ntwo\r', '\nthree\r\n'])).toEqual(['one', 'two', 'three']);
  });

  it('keeps a CR inside a line', () => {
    expect(split(['a\rb\n'])).toEqual(['a\rb']);
  });

  it('reports a line of exactly the limit whole', () => {
    expect(split(['0123456789\n'])).toEqual(['0123456789']);
    expect(split(['01234', '56789', '\nnext\n'])).toEqual(['0123456789', 'next']);
    expect(split(['0123456789\r\n'])).toEqual(['0123456789']);
  });

  it('cuts a longer line at the limit once and drops its rest up to the newline', () => {
    expect(split(['0123456789AB\nnext\n'])).toEqual(['0123456789', 'next']);
    // Over several chunks: reported as soon as it is too long, not when it ends.
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), 10);
    splitter.push(Buffer.from('012345'));
    splitter.push(Buffer.from('6789AB'));
    expect(lines).toEqual(['0123456789']);
    splitter.push(Buffer.from('CDEFGHIJKLMNOP'.repeat(10)));
    splitter.push(Buffer.from('QRS\nafter\n'));
    expect(lines).toEqual(['0123456789', 'after']);
  });

  it('joins a multi-byte UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('é€😀\n', 'utf8'); // 2, 3 and 4 bytes
    const chunks = [...bytes].map((b) => Buffer.from([b])); // one byte at a time
    expect(split(chunks)).toEqual(['é€😀']);
    expect(split([bytes.subarray(0, 4), bytes.subarray(4)])).toEqual(['é€😀']);
  });

  it('counts the limit in characters, not bytes', () => {
    expect(split(['€€€€€€€€€€\n'])).toEqual(['€€€€€€€€€€']);
  });

  it('reports a last line without a newline when the stream ends', () => {
    expect(split(['one\ntwo'])).toEqual(['one', 'two']);
    expect(split(['one\ntwo\r'])).toEqual(['one', 'two']);
    expect(split(['one\n'])).toEqual(['one']);
  });

  it('reports no last line at the end when it was cut already', () => {
    expect(split(['0123456789ABC'])).toEqual(['0123456789']);
  });

  it('ends an incomplete UTF-8 character at the end of the stream as U+FFFD', () => {
    const euro = Buffer.from('€', 'utf8');
    expect(split([Buffer.concat([Buffer.from('x'), euro.subarray(0, 2)])])).toEqual(['x\ufffd']);
  });
});
