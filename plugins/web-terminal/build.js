'use strict';
// Bundles the frontend into dist/index.js: one ES module with xterm, its fit addon and its CSS
// (as text, injected on mount), because Portico's console imports it from a Blob URL where
// relative imports cannot resolve. Run: node plugins/web-terminal/build.js
//
// The file is replaced atomically (written aside, then renamed), so a Portico serving it while
// a build runs never sends half a bundle.
const { mkdirSync, renameSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const esbuild = require('esbuild');

const OUTFILE = path.join(__dirname, 'dist', 'index.js');

async function build() {
  const result = await esbuild.build({
    entryPoints: [path.join(__dirname, 'frontend', 'index.ts')],
    outfile: OUTFILE,
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    loader: { '.css': 'text' },
    legalComments: 'eof', // xterm's MIT notice travels with the bundle
    logLevel: 'warning',
  });
  const [output] = result.outputFiles;
  mkdirSync(path.dirname(OUTFILE), { recursive: true });
  const temporary = `${OUTFILE}.${process.pid}.tmp`;
  writeFileSync(temporary, output.contents);
  renameSync(temporary, OUTFILE);
  console.log(`built ${path.relative(process.cwd(), OUTFILE)} (${output.contents.length} bytes)`);
}

build().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
