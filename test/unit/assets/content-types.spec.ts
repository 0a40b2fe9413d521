import { contentTypeFor } from '../../../src/plugins/assets/content-types';

describe('contentTypeFor', () => {
  it.each([
    ['index.js', 'text/javascript; charset=utf-8'],
    ['dist/app.mjs', 'text/javascript; charset=utf-8'],
    ['style.css', 'text/css; charset=utf-8'],
    ['index.html', 'text/html; charset=utf-8'],
    ['manifest.json', 'application/json; charset=utf-8'],
    ['index.js.map', 'application/json; charset=utf-8'],
    ['icon.svg', 'image/svg+xml'],
    ['a.png', 'image/png'],
    ['a.jpg', 'image/jpeg'],
    ['a.JPEG', 'image/jpeg'],
    ['a.gif', 'image/gif'],
    ['a.webp', 'image/webp'],
    ['favicon.ico', 'image/x-icon'],
    ['f.woff', 'font/woff'],
    ['f.woff2', 'font/woff2'],
    ['README.txt', 'text/plain; charset=utf-8'],
    ['m.wasm', 'application/wasm'],
    ['data.bin', 'application/octet-stream'],
    ['Makefile', 'application/octet-stream'],
    ['.js', 'application/octet-stream'],
  ])('%s is %s', (path, type) => expect(contentTypeFor(path)).toBe(type));
});
