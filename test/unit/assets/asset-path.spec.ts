import { toAssetPath } from '../../../src/plugins/assets/asset-path';

const url = (rest: string): string => `/api/plugins/echo/assets/${rest}`;

describe('toAssetPath', () => {
  it('joins the segments Express 5 hands over', () => {
    expect(toAssetPath(['dist', 'index.js'], url('dist/index.js'))).toBe('dist/index.js');
  });

  it('accepts the wildcard as one string too', () => {
    expect(toAssetPath('dist/index.js', url('dist/index.js'))).toBe('dist/index.js');
  });

  it('keeps decoded characters that are not separators', () => {
    expect(toAssetPath(['my file.js'], url('my%20file.js'))).toBe('my file.js');
  });

  it('drops "." segments', () => {
    expect(toAssetPath(['.', 'a', '.', 'b.js'], url('./a/./b.js'))).toBe('a/b.js');
  });

  it('takes an encoded slash as a separator (CloudCLI requests the entry as one segment)', () => {
    expect(toAssetPath(['dist/index.js'], url('dist%2Findex.js'))).toBe('dist/index.js');
    expect(toAssetPath(['a/b', 'c.js'], url('a%2fb/c.js'))).toBe('a/b/c.js');
  });

  it('ignores the query string', () => {
    expect(toAssetPath(['a.js'], url('a.js?v=%2f'))).toBe('a.js');
  });

  it.each<[string, unknown, string]>([
    ['a .. segment', ['..', 'manifest.json'], url('../manifest.json')],
    ['a .. segment in the middle', ['a', '..', '..', 'x'], url('a/../../x')],
    ['an encoded .. (decoded by the router)', ['..', 'x'], url('%2e%2e/x')],
    ['an encoded slash before ..', ['../x'], url('..%2fx')],
    ['an encoded slash after ..', ['a/../../x'], url('a%2F..%2F..%2Fx')],
    ['an encoded absolute path', ['/etc/passwd'], url('%2Fetc%2Fpasswd')],
    ['an encoded trailing slash', ['sub/'], url('sub%2F')],
    ['an encoded backslash', ['..\\x'], url('..%5cx')],
    ['a raw backslash', ['..\\x'], url('..\\x')],
    ['an encoded NUL', ['a\0.js'], url('a%00.js')],
    ['a NUL from any source', ['a\0.js'], url('a.js')],
    ['an absolute path (leading empty segment)', ['', 'etc', 'passwd'], url('/etc/passwd')],
    ['an empty segment', ['a', '', 'b'], url('a//b')],
    ['only "."', ['.'], url('.')],
    ['nothing', [], url('')],
    ['a missing parameter', undefined, url('x')],
    ['a non-string segment', [1], url('1')],
    ['an absolute string', '/etc/passwd', url('/etc/passwd')],
    ['a string with ..', '../x', url('../x')],
  ])('refuses %s', (_what, wildcard, rawUrl) => {
    expect(toAssetPath(wildcard, rawUrl)).toBeUndefined();
  });
});
