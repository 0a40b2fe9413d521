// Portico's CPU per WebSocket handshake, in rounds, from one process (docs/relay-profile.md,
// "Handshake CPU"). Builds nothing: run `npm run build` first.
//
//   node bench/handshake-cpu.mjs                      # 5 rounds of 1,500 handshakes, distinct tokens
//   ROUNDS=7 N=2000 C=50 SAME=1 node bench/handshake-cpu.mjs
//   PROF=1 node bench/handshake-cpu.mjs              # also a V8 CPU profile in ./handshake-prof/
//   PORTICO_NODE_ARGS=--trace-gc node bench/handshake-cpu.mjs   # Node flags for Portico
//
// Portico (dist/main.js with `npm start`'s Node flags, the bundled echo plugin, LOG_LEVEL=error) is pinned to core 1 with its
// echo child, as in `npm run bench`; the clients run here. Each handshake presents its own token
// (unless SAME=1), sends one message, waits for the echo and closes: the connect-distinct cycle.
// After 200 warm-up handshakes, each round reads utime + stime of Portico and of the echo child
// from /proc before and after N handshakes at concurrency C. The first round or two are dearer
// (the JIT is still at work): compare medians of later rounds, and runs made back to back.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SignJWT } from 'jose';
import WebSocket from 'ws';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.env.N ?? 1500);
const C = Number(process.env.C ?? 50);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const WARMUP = 200;
const distinct = process.env.SAME !== '1';
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const HZ = 100;

const tmp = mkdtempSync(join(tmpdir(), 'portico-handshake-'));
mkdirSync(join(tmp, 'plugins'));
symlinkSync(join(ROOT, 'plugins/echo'), join(tmp, 'plugins/echo'));
const secret = randomBytes(32).toString('base64url');
const port = 20000 + Math.floor(Math.random() * 10000);
// The Node flags of `npm start` (`node <flags> dist/main.js`), as the image runs Portico.
const start = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start.split(
  /\s+/,
);
const nodeArgs = [
  ...start.slice(1, start.indexOf('dist/main.js')),
  ...(process.env.PORTICO_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ...(process.env.PROF === '1'
    ? ['--cpu-prof', '--cpu-prof-dir', join(process.cwd(), 'handshake-prof')]
    : []),
];
const portico = spawn(
  'taskset',
  ['-c', '1', process.execPath, ...nodeArgs, join(ROOT, 'dist/main.js')],
  {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: '127.0.0.1',
      PLUGINS_DIR: join(tmp, 'plugins'),
      DATA_DIR: join(tmp, 'data'),
      JWT_SECRET: secret,
      SECRETS_KEY: randomBytes(32).toString('base64'),
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  },
);

const key = new TextEncoder().encode(secret);
const tokens = [];
for (let i = 0; i < WARMUP + ROUNDS * N; i++) {
  tokens.push(
    await new SignJWT({ name: `user ${i}`, roles: ['user'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(`user-${distinct ? i : 0}`)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key),
  );
}

const closes = {};
let echoes = 0;
function handshake(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/plugin-ws/echo`, {
      headers: { authorization: `Bearer ${token}` },
    });
    ws.on('open', () => ws.send('hello'));
    ws.on('message', () => {
      echoes += 1;
      ws.close();
    });
    ws.on('close', (code) => {
      closes[code] = (closes[code] ?? 0) + 1;
      resolve();
    });
    ws.on('error', reject);
  });
}

/** utime + stime of a process, in clock ticks. */
function ticks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

// Until the echo plugin is running (4503 before that).
for (let ready = false; !ready;) {
  echoes = 0;
  await handshake(tokens[0]).catch(() => undefined);
  ready = echoes > 0;
  if (!ready) await new Promise((r) => setTimeout(r, 200));
}
// Close codes of the measured handshakes only (the polls above end in 1006 or 4503).
for (const code of Object.keys(closes)) delete closes[code];
for (let i = 1; i < WARMUP; i++) await handshake(tokens[i]);
const echoPid = Number(
  execFileSync('pgrep', ['-P', String(portico.pid)])
    .toString()
    .split('\n')[0],
);

const rounds = [];
let next = WARMUP;
for (let round = 0; round < ROUNDS; round++) {
  const end = next + N;
  const p0 = ticks(portico.pid);
  const e0 = ticks(echoPid);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < end) await handshake(tokens[next++]);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rounds.push({
    porticoUs: Math.round(((ticks(portico.pid) - p0) * 1e6) / HZ / N),
    echoUs: Math.round(((ticks(echoPid) - e0) * 1e6) / HZ / N),
    perSecond: Math.round(N / seconds),
  });
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(
  JSON.stringify({
    handshakes: N,
    concurrency: C,
    distinctTokens: distinct,
    closeCodes: closes,
    rounds,
    median: {
      porticoUs: median(rounds.map((r) => r.porticoUs)),
      echoUs: median(rounds.map((r) => r.echoUs)),
      perSecond: median(rounds.map((r) => r.perSecond)),
    },
  }),
);
portico.kill('SIGTERM');
await new Promise((resolve) => portico.on('exit', resolve));
rmSync(tmp, { recursive: true, force: true });
