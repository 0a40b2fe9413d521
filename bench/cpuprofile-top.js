'use strict';
// Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): busy time, and the
// functions with the most self time, skipping module loading at startup.
//
//   node bench/cpuprofile-top.js bench/results/<stamp>-portico-cpuprof/<file>.cpuprofile [rows]
//
// Samples are wall-clock: time the thread spent in a system call, or preempted by the echo
// plugin sharing its core, is charged to the JavaScript function that made the call. Kernel
// time inside epoll is "(idle)".
const fs = require('node:fs');

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/cpuprofile-top.js <file.cpuprofile> [rows]\n');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const rows = Number(rowsArg ?? 25);
const STARTUP = /cjs\/loader|package_json_reader|bootstrap\/realm|esm\/|modules\/helpers/;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
let idle = 0;
let startup = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const frame = nodes.get(id).callFrame;
  const where = `${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
  const key = `${frame.functionName || '(anonymous)'} ${frame.url ? where : ''}`.trim();
  total += dt;
  if (frame.functionName === '(idle)') idle += dt;
  else if (STARTUP.test(frame.url)) startup += dt;
  else self.set(key, (self.get(key) ?? 0) + dt);
});
const busy = total - idle - startup;
const ms = (us) => (us / 1000).toFixed(0);
console.log(`wall ${ms(total)} ms: idle ${ms(idle)}, module loading ${ms(startup)}, busy ${ms(busy)}`);
console.log('self ms   % busy  function');
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows))
  console.log(`${ms(us).padStart(7)}  ${((100 * us) / busy).toFixed(1).padStart(6)}  ${key}`);
