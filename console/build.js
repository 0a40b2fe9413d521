// Builds the web console into console/dist: `node console/build.js`.
// index.html, app.js (one minified ES2020 module, no external imports) and styles.css. Portico
// serves the page at / and the files at /console/<file>; the page references them with a content
// hash in the query string, so a new build is never served stale.
'use strict';

const { createHash } = require('node:crypto');
const { mkdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const esbuild = require('esbuild');

const source = __dirname;
const dist = join(source, 'dist');

async function build() {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });

  const script = await esbuild.build({
    entryPoints: [join(source, 'src', 'main.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    write: false,
    logLevel: 'warning',
    outfile: join(dist, 'app.js'),
  });
  const styles = await esbuild.build({
    entryPoints: [join(source, 'styles.css')],
    bundle: true,
    minify: true,
    target: ['chrome100', 'firefox100', 'safari15'],
    write: false,
    logLevel: 'warning',
    outfile: join(dist, 'styles.css'),
  });

  const app = script.outputFiles[0].contents;
  const css = styles.outputFiles[0].contents;
  writeFileSync(join(dist, 'app.js'), app);
  writeFileSync(join(dist, 'styles.css'), css);
  const html = readFileSync(join(source, 'index.html'), 'utf8')
    .replace('/console/app.js', `/console/app.js?v=${hash(app)}`)
    .replace('/console/styles.css', `/console/styles.css?v=${hash(css)}`);
  writeFileSync(join(dist, 'index.html'), html);
  return { app: app.length, css: css.length };
}

function hash(bytes) {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 12);
}

build().then(
  (sizes) => console.log(`console/dist: app.js ${sizes.app} B, styles.css ${sizes.css} B`),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
