import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { WebSocket } from 'ws';

import { http } from '../helpers/http-client';
import type { PorticoProcess } from '../helpers/portico-process';

export const ROOT = resolve(__dirname, '../..');
/** The repository's own plugins folder: the bundled echo plugin. */
export const PLUGINS_DIR = resolve(ROOT, 'plugins');
const RELIABILITY_DOC = resolve(ROOT, 'docs/reliability.md');

/** A size read from the environment (`SOAK_*`), with the quick-run default. */
export function soakSize(name: string, quick: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return quick;
  const value = Number(raw.replace(/[_,]/g, ''));
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number`);
  return value;
}

/** Open file descriptors of a process (sockets, pipes, files). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process, in bytes. */
export function rssOf(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

/** The soft limit on open files of a process. */
export function fdLimit(pid: number): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

/** The pid of the host's child running `plugins/<name>/server.js`. */
export function pluginPid(hostPid: number, name: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== hostPid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('server.js') && readCwd(Number(entry)) === resolve(PLUGINS_DIR, name))
        return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

function readCwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** The host's `portico_ws_connections{plugin="…"}` gauge. */
export async function wsConnections(host: PorticoProcess, plugin: string): Promise<number> {
  const text = (await http(host.baseUrl, 'GET', '/metrics')).body.toString('utf8');
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`portico_ws_connections{plugin="${plugin}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

export interface ProcessFigures {
  readonly rss: number;
  readonly fds: number;
}

export function figures(pid: number): ProcessFigures {
  return { rss: rssOf(pid), fds: fdCount(pid) };
}

/** Opens one WebSocket through Portico; resolves once open, rejects on refusal or error. */
export function openSocket(url: string, token: string): Promise<WebSocket> {
  return new Promise((resolveOpen, reject) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
    });
    const fail = (err: Error): void => {
      ws.removeAllListeners('open');
      ws.terminate();
      reject(err);
    };
    ws.once('open', () => {
      ws.removeListener('error', fail);
      ws.on('error', () => undefined);
      resolveOpen(ws);
    });
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      fail(new Error(`handshake answered ${res.statusCode ?? 0}`));
    });
  });
}

/** Resolves when `ws` has closed (at once if it already has). */
export function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(1005);
  return new Promise((r) => ws.once('close', (code: number) => r(code)));
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function pooled(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export const MiB = 1024 * 1024;

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * What a reader needs to compare figures: cores, memory, kernel, Node, fd limit, and the load
 * average at the end of the run (other work on the machine slows every rate down).
 */
export function machine(hostPid: number): string {
  const cpu = cpus();
  return (
    `${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}, Node ${process.version}, ` +
    `host fd limit ${fdLimit(hostPid)}, load average ${loadavg()[0]?.toFixed(1)} at the end`
  );
}

/** The command that reproduces a run with these sizes. */
export function command(sizes: Readonly<Record<string, number>>, file: string): string {
  const vars = Object.entries(sizes)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${vars} npm run test:soak -- ${file}`;
}

/** Prints a section's figures, and writes them into docs/reliability.md when SOAK_RECORD=1. */
export function report(section: string, markdown: string): void {
  process.stdout.write(`\n${markdown}\n\n`);
  if (process.env.SOAK_RECORD !== '1') return;
  const start = `<!-- soak:${section}:start -->`;
  const end = `<!-- soak:${section}:end -->`;
  const doc = readFileSync(RELIABILITY_DOC, 'utf8');
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from === -1 || to < from) throw new Error(`docs/reliability.md has no ${start} … ${end}`);
  writeFileSync(RELIABILITY_DOC, `${doc.slice(0, from)}${start}\n${markdown}\n${doc.slice(to)}`);
}

/** A markdown table of label/value pairs. */
export function table(rows: readonly (readonly [string, string])[]): string {
  return ['| | |', '|---|--:|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
