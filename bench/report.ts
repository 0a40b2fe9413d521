import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Metrics, ScenarioName, ScenarioParams, TargetName } from './types';
import { warmupParams } from './types';

/** One scenario on one target in one run. */
export interface RunRecord {
  run: number;
  scenario: ScenarioName;
  target: TargetName;
  metrics: Metrics;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramGiB: number;
  kernel: string;
  node: string;
  nginx: string;
  ws: string;
  pinning: string;
  portico: string;
  openFileLimit: number;
}

export interface Report {
  date: string;
  command: string;
  quick: boolean;
  /** Whether a warm-up round (not recorded) ran before run 1; absent in older results. */
  warmup?: boolean;
  runs: number;
  targets: TargetName[];
  scenarios: ScenarioName[];
  idleConnections: number;
  idleNote: string | undefined;
  params: ScenarioParams;
  machine: MachineInfo;
  records: RunRecord[];
  /** medians[target][scenario][metric] */
  medians: Partial<Record<TargetName, Partial<Record<ScenarioName, Metrics>>>>;
  porticoLog: string[];
}

interface Row {
  scenario: ScenarioName;
  metric: string;
  label: string;
  better: 'higher' | 'lower';
  digits: number;
}

export const ROWS: Row[] = [
  { scenario: 'latency', metric: 'p50Us', label: 'latency p50 (µs)', better: 'lower', digits: 0 },
  { scenario: 'latency', metric: 'p99Us', label: 'latency p99 (µs)', better: 'lower', digits: 0 },
  { scenario: 'latency', metric: 'maxUs', label: 'latency max (µs)', better: 'lower', digits: 0 },
  {
    scenario: 'msgrate',
    metric: 'roundTripsPerSec',
    label: 'msgrate (round trips/s)',
    better: 'higher',
    digits: 0,
  },
  { scenario: 'bulk', metric: 'mbPerSec', label: 'bulk (MB/s)', better: 'higher', digits: 1 },
  {
    scenario: 'connect',
    metric: 'perSec',
    label: 'connect (handshakes/s)',
    better: 'higher',
    digits: 0,
  },
  {
    scenario: 'connect',
    metric: 'handshakeP50Ms',
    label: 'connect p50 (ms)',
    better: 'lower',
    digits: 2,
  },
  {
    scenario: 'connect',
    metric: 'handshakeP99Ms',
    label: 'connect p99 (ms)',
    better: 'lower',
    digits: 2,
  },
  {
    scenario: 'idle',
    metric: 'kibPerConn',
    label: 'idle memory (KiB/connection)',
    better: 'lower',
    digits: 1,
  },
];

/** The ratios issue #3 asks of the relay, checked on every full run. */
const GOALS: {
  scenario: ScenarioName;
  metric: string;
  versus: TargetName;
  op: '>=' | '<=';
  factor: number;
  text: string;
}[] = [
  {
    scenario: 'msgrate',
    metric: 'roundTripsPerSec',
    versus: 'nginx',
    op: '>=',
    factor: 1.3,
    text: 'msgrate ≥ 1.3× nginx',
  },
  {
    scenario: 'bulk',
    metric: 'mbPerSec',
    versus: 'nginx',
    op: '>=',
    factor: 1.1,
    text: 'bulk MB/s ≥ 1.1× nginx',
  },
  {
    scenario: 'latency',
    metric: 'p50Us',
    versus: 'direct',
    op: '<=',
    factor: 1.15,
    text: 'latency p50 ≤ 1.15× direct',
  },
  {
    scenario: 'connect',
    metric: 'perSec',
    versus: 'nginx',
    op: '>=',
    factor: 0.8,
    text: 'connect/s ≥ 0.8× nginx',
  },
  {
    scenario: 'idle',
    metric: 'kibPerConn',
    versus: 'nginx',
    op: '<=',
    factor: 1.0,
    text: 'idle KiB/connection ≤ nginx',
  },
];

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function medians(records: RunRecord[]): Report['medians'] {
  const out: Report['medians'] = {};
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const key = `${r.target}/${r.scenario}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const group of groups.values()) {
    const { target, scenario } = group[0];
    const metrics: Metrics = {};
    for (const name of Object.keys(group[0].metrics))
      metrics[name] = median(group.map((r) => r.metrics[name]));
    out[target] = { ...out[target], [scenario]: metrics };
  }
  return out;
}

function value(report: Report, target: TargetName, scenario: ScenarioName, metric: string): number {
  return report.medians[target]?.[scenario]?.[metric] ?? NaN;
}

function fmt(n: number, digits: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 && a >= 0 ? a / b : NaN;
}

function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a';
}

export function resultsTable(report: Report): string {
  // The bare splice (bench/splice.js) is a reference column, shown when it was measured.
  const splice = report.targets.includes('splice');
  const lines = [
    '| metric | better | direct | nginx | portico | portico/direct | portico/nginx | nginx/direct |' +
      (splice ? ' node splice | splice/nginx | portico/splice |' : ''),
    '|---|---|--:|--:|--:|--:|--:|--:|' + (splice ? '--:|--:|--:|' : ''),
  ];
  for (const row of ROWS) {
    if (!report.scenarios.includes(row.scenario)) continue;
    const v = (t: TargetName): number => value(report, t, row.scenario, row.metric);
    lines.push(
      `| ${row.label} | ${row.better} | ${fmt(v('direct'), row.digits)} | ${fmt(v('nginx'), row.digits)} | ` +
        `${fmt(v('portico'), row.digits)} | ${fmtRatio(ratio(v('portico'), v('direct')))} | ` +
        `${fmtRatio(ratio(v('portico'), v('nginx')))} | ${fmtRatio(ratio(v('nginx'), v('direct')))} |` +
        (splice
          ? ` ${fmt(v('splice'), row.digits)} | ${fmtRatio(ratio(v('splice'), v('nginx')))} | ` +
            `${fmtRatio(ratio(v('portico'), v('splice')))} |`
          : ''),
    );
  }
  return lines.join('\n');
}

export function goalsTable(report: Report): string {
  const lines = [
    '| goal (issue #3) | measured (medians) | met | run by run | runs meeting it |',
    '|---|--:|:-:|--:|--:|',
  ];
  for (const g of GOALS) {
    if (!report.scenarios.includes(g.scenario)) continue;
    const meets = (r: number): boolean => (g.op === '>=' ? r >= g.factor : r <= g.factor);
    const r = ratio(
      value(report, 'portico', g.scenario, g.metric),
      value(report, g.versus, g.scenario, g.metric),
    );
    const met = !Number.isFinite(r) ? 'n/a' : meets(r) ? 'yes' : '**no**';
    // Each run measures the targets back to back, so a run's own ratio is the paired comparison.
    const perRun = pairedRatios(report, g.scenario, g.metric, g.versus);
    const range =
      perRun.length === 0
        ? 'n/a'
        : `${Math.min(...perRun).toFixed(2)}–${fmtRatio(Math.max(...perRun))}`;
    const count = `${perRun.filter(meets).length} of ${perRun.length}`;
    lines.push(`| ${g.text} | ${fmtRatio(r)} ${g.versus} | ${met} | ${range} | ${count} |`);
  }
  return lines.join('\n');
}

/** Portico's value divided by `versus`'s in the same run, for every run that measured both. */
function pairedRatios(
  report: Report,
  scenario: ScenarioName,
  metric: string,
  versus: TargetName,
): number[] {
  const of = (target: TargetName, run: number): number =>
    report.records.find((r) => r.scenario === scenario && r.target === target && r.run === run)
      ?.metrics[metric] ?? NaN;
  const out: number[] = [];
  for (let run = 1; run <= report.runs; run++) {
    const r = ratio(of('portico', run), of(versus, run));
    if (Number.isFinite(r)) out.push(r);
  }
  return out;
}

export function perRunTable(report: Report): string {
  const header = Array.from({ length: report.runs }, (_, i) => `run ${i + 1}`);
  const lines = [
    `| metric | target | ${header.join(' | ')} | median |`,
    `|---|---|${header.map(() => '--:').join('|')}|--:|`,
  ];
  for (const row of ROWS) {
    for (const target of report.targets) {
      const runs = report.records
        .filter((r) => r.scenario === row.scenario && r.target === target)
        .sort((a, b) => a.run - b.run);
      if (runs.length === 0) continue;
      const cells = runs.map((r) => fmt(r.metrics[row.metric], row.digits));
      lines.push(
        `| ${row.label} | ${target} | ${cells.join(' | ')} | ` +
          `${fmt(value(report, target, row.scenario, row.metric), row.digits)} |`,
      );
    }
  }
  return lines.join('\n');
}

/** Median CPU use per scenario and target, in % of one core. */
export function cpuTable(report: Report): string {
  const pct = (v: number | undefined): string =>
    v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(0)}%`;
  const lines = [
    '| scenario | target | load client | proxy | echo upstream | other processes |',
    '|---|---|--:|--:|--:|--:|',
  ];
  for (const scenario of report.scenarios) {
    for (const target of report.targets) {
      const m = report.medians[target]?.[scenario];
      if (!m || m.clientCpuPct === undefined) continue;
      const proxy = target === 'direct' ? '–' : pct(m.proxyCpuPct);
      const upstream = target === 'direct' ? pct(m.proxyCpuPct) : pct(m.upstreamCpuPct);
      lines.push(
        `| ${scenario} | ${target} | ${pct(m.clientCpuPct)} | ${proxy} | ${upstream} | ${pct(m.otherCpuPct)} |`,
      );
    }
  }
  return lines.join('\n');
}

/** How much CPU other processes took while we measured (median and worst scenario). */
export function otherLoad(report: Report): { median: number; max: number } {
  const values = report.records
    .map((r) => r.metrics.otherCpuPct)
    .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return { median: median(values), max: values.length > 0 ? Math.max(...values) : NaN };
}

export function machineLines(report: Report): string {
  const m = report.machine;
  const other = otherLoad(report);
  return [
    `- **Date**: ${report.date}`,
    `- **Command**: \`${report.command}\`${report.quick ? ' (quick smoke run — not representative)' : ''}`,
    `- **Machine**: ${m.cpuModel}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB RAM, Linux ${m.kernel}`,
    `- **Software**: Node ${m.node}, ${m.nginx} (Debian package), ws ${m.ws} (load client and echo plugin)`,
    `- **Portico**: ${m.portico}`,
    `- **Pinning**: ${m.pinning}`,
    `- **Runs**: ${report.runs}; every number is the median of the runs`,
    `- **Other load** while measuring (processes not under test, % of one core): median ` +
      `${fmt(other.median, 0)}%, worst scenario ${fmt(other.max, 0)}%`,
  ].join('\n');
}

export function markdown(report: Report): string {
  const p = report.params;
  const warm = warmupParams(p);
  const n = (x: number): string => x.toLocaleString('en-US');
  return `# Benchmarks

<!-- Generated by \`npm run bench\` (bench/bench.ts). Do not edit by hand: re-run the bench. -->

How fast is a WebSocket through Portico, compared with a direct connection to the plugin and with
nginx in front of it? One invocation measures them side by side against the same echo plugin
(\`plugins/echo/server.js\`), together with a bare Node.js byte splice as a yardstick for what
any Node relay can do on this machine.

${machineLines(report)}

Reproduce with \`npm run bench\` (about 8 minutes; installs Debian's nginx with apt-get if it is
missing) or \`npm run bench -- --quick\` for a smoke run; options are described in
[\`bench/README.md\`](../bench/README.md).

![Each scenario per target, normalised to direct](benchmarks.svg)

## Results

${resultsTable(report)}

Ratios are plain quotients of the medians; whether a larger ratio is good depends on the
"better" column.

## Goals

${goalsTable(report)}

## CPU use

Medians over the measured window, in % of one core. A load client near 100% means that
number is bounded by the client rather than by the target; the proxy and the echo upstream
share one core, so together they cannot exceed 100% (kernel time for loopback networking is not
attributed to any of them).

${cpuTable(report)}

## Every run

${perRunTable(report)}

## Method

- **Targets**, all in one invocation: **direct** — the load client connects to the echo
  plugin's own \`ws://127.0.0.1:<port>/ws\`; **nginx** — Debian's nginx, one worker,
  \`proxy_buffering off\`, HTTP/1.1 with Upgrade/Connection headers, access log off, everything
  else default ([\`bench/nginx.conf.template\`](../bench/nginx.conf.template)), proxying
  \`/plugin-ws/echo\` to the same echo process as direct; **portico** — \`node dist/main.js\` after
  \`npm run build\` (\`NODE_ENV=production\`, \`LOG_LEVEL=warn\`, default ping interval), with a
  plugins folder holding only \`echo\`; the client connects to \`/plugin-ws/echo\` with an
  \`Authorization: Bearer\` HS256 JWT, so every handshake is a JWT check plus an upstream dial.
  Portico runs its own echo child, which is the same code as the one behind direct and nginx;
  **node splice** — [\`bench/splice.js\`](../bench/splice.js), 60 lines: reads the upgrade
  request, verifies the Bearer JWT with jose (no cache), rewrites the path and pipes bytes
  both ways to the same echo process as direct and nginx; none of Portico's frame tracking, close
  codes, pings, size limit, identity headers, metrics or Nest.
- **Load client**: the \`ws\` library (permessage-deflate off) in its own process. Its frames are
  masked with an all-zero key, which lets \`ws\` skip the XOR on its side; otherwise masking 1 MiB
  frames used most of the client's CPU and capped the bulk scenario at the client's speed. ${report.machine.pinning}.
- **Verification**: every echo is compared byte for byte with what was sent, must come back as
  binary and in order; handshakes must succeed and every close must be 1000. Any error,
  mismatch, unexpected close, or 10 s without progress fails the whole run with a non-zero exit.
- **Quiet machine**: before each measurement the harness waits (up to a minute, five minutes per
  invocation) until processes other than its own use under 15% of a core, and it records the
  other load during every measurement (see "Other load" above and the CPU table).
- **Order**: the targets run one after the other for each scenario, and the order of the
  targets rotates from one run to the next.
- **Warm-up round**: ${
    report.warmup === true
      ? `before run 1, every scenario except idle ran once on every target with shorter counts
  (${n(warm.latencyRoundTrips)} latency round trips, ${warm.msgrateSeconds} s of msgrate, ${warm.bulkSeconds} s of bulk,
  ${n(warm.connectCount)} connect cycles), checked like the others but not recorded. Portico, the
  splice, the echo plugin and the load client run on V8, which compiles hot code as it runs:
  without this round a target's first run measured up to a third slower than its later ones.`
      : 'none (`--no-warmup` or `--quick`): first runs include JIT warm-up.'
  }
- **latency**: 1 connection, sequential ${p.messageBytes}-byte round trips (${n(p.latencyRoundTrips)}
  measured after ${n(p.latencyWarmup)} warm-up ones); p50/p99/max of the round-trip time.
- **msgrate**: ${p.msgrateConnections} connections × ${p.msgrateInFlight} messages in flight,
  ${p.messageBytes}-byte binary messages, ${p.warmupSeconds} s warm-up, then round trips completed
  in ${p.msgrateSeconds} s.
- **bulk**: ${p.bulkConnections} connections, each echoing random ${p.bulkMessageBytes / 1048576} MiB
  binary messages with one in flight, ${p.warmupSeconds} s warm-up then ${p.bulkSeconds} s; MB/s
  (10⁶ bytes) of payload echoed — every byte crosses the proxy twice.
- **connect**: ${n(p.connectWarmup)} warm-up cycles, then ${n(p.connectCount)} measured, at
  concurrency ${p.connectConcurrency}, each opening a connection (with a JWT for Portico and the
  splice), doing one ${p.messageBytes}-byte echo and closing; cycles per second, and p50/p99 of
  the time from \`new WebSocket()\` to \`open\`. All cycles use the same token, as a browser
  tab reconnecting does; Portico verifies it fully the first time and then serves it from its
  verified-token cache (see the README's security model).
- **idle**: on freshly started processes (a new echo, nginx or Portico for every run, because
  memory freed by earlier connections stays in RSS and would be reused): 100 warm-up
  connections opened, echoed and closed, then ${n(p.idleConnections)} connections opened and
  left idle; VmRSS of the proxy process from \`/proc/<pid>/status\` before, and after opening
  them once ${p.idleSettleMs / 1000} s have passed and four readings 500 ms apart agree within 1%
  (at most 10 s more), divided by the number of connections
  (for direct that is the echo server's own memory; for nginx the worker process; for Portico
  the host process, not its echo child); afterwards every connection must still echo one
  message.${report.idleNote ? `\n  ${report.idleNote}` : ''}
- Raw numbers of every run are in \`bench/results/<timestamp>.json\` (not committed).
`;
}

// ---------------------------------------------------------------------------------------------
// README summary

/** The README's performance summary sits between these lines; everything between is generated. */
export const README_SUMMARY_START = '<!-- bench:summary:start -->';
export const README_SUMMARY_END = '<!-- bench:summary:end -->';

/** Rows of the Results table the README summarises, by their label there. */
const SUMMARY_ROWS: readonly string[] = [
  'latency p50 (µs)',
  'msgrate (round trips/s)',
  'bulk (MB/s)',
  'connect (handshakes/s)',
  'idle memory (KiB/connection)',
];

/** Ratio columns of the Results table the README shows, with the README's heading for each. */
const SUMMARY_COLUMNS: readonly (readonly [column: string, heading: string])[] = [
  ['portico/nginx', 'Portico / nginx'],
  ['portico/direct', 'Portico / direct'],
  ['splice/nginx', 'bare Node splice / nginx'],
  ['portico/splice', 'Portico / splice'],
];

/** The value of a `- **Field**: value` line of benchmarks.md's header. */
function headerField(text: string, field: string): string {
  const line = text.split('\n').find((l) => l.startsWith(`- **${field}**: `));
  if (line === undefined) throw new Error(`benchmarks.md has no "${field}" line`);
  return line.slice(`- **${field}**: `.length).trim();
}

function tableCells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((cell) => cell.trim());
}

/** The "## Results" table of benchmarks.md as rows of cells keyed by column heading. */
function resultsRows(text: string): Map<string, Map<string, string>> {
  const lines = text.split('\n');
  const at = lines.indexOf('## Results');
  const table: string[] = [];
  for (const line of lines.slice(at + 1)) {
    if (line.startsWith('|')) table.push(line);
    else if (table.length > 0) break;
  }
  if (at === -1 || table.length < 3) throw new Error('benchmarks.md has no Results table');
  const headings = tableCells(table[0]);
  const rows = new Map<string, Map<string, string>>();
  for (const line of table.slice(2)) {
    const cells = tableCells(line);
    rows.set(cells[0], new Map(headings.map((h, i) => [h, cells[i] ?? ''])));
  }
  return rows;
}

/**
 * The README's performance summary, read from docs/benchmarks.md (not from raw results), so the
 * README can only ever repeat what the committed report says: the headline ratios of the
 * Results table and the run they come from.
 */
export function readmeSummary(benchmarksMarkdown: string): string {
  const rows = resultsRows(benchmarksMarkdown);
  const anyRow = rows.values().next().value as Map<string, string>;
  const columns = SUMMARY_COLUMNS.filter(([column]) => anyRow.has(column));
  const date = headerField(benchmarksMarkdown, 'Date').slice(0, 10);
  const machine = headerField(benchmarksMarkdown, 'Machine');
  const commit = headerField(benchmarksMarkdown, 'Portico');
  const command = headerField(benchmarksMarkdown, 'Command');
  const runs = headerField(benchmarksMarkdown, 'Runs').split(';')[0];
  const lines = [
    '<!-- Generated from docs/benchmarks.md by `npm run bench` (bench/report.ts). Do not edit by hand. -->',
    '',
    `Latest run: ${date}, ${machine}, Portico ${commit}; ${command}, medians of ${runs} ` +
      `run${runs === '1' ? '' : 's'}.`,
    '',
    `| metric | better | ${columns.map(([, heading]) => heading).join(' | ')} |`,
    `|---|---|${columns.map(() => '--:').join('|')}|`,
  ];
  for (const label of SUMMARY_ROWS) {
    const row = rows.get(label);
    if (row === undefined) continue;
    const ratios = columns.map(([column]) => row.get(column) ?? 'n/a');
    lines.push(`| ${label} | ${row.get('better') ?? ''} | ${ratios.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * `readme` with the text between the summary markers replaced by `summary` (a blank line before
 * the end marker, so Markdown ends the table there).
 */
export function withReadmeSummary(readme: string, summary: string): string {
  const start = readme.indexOf(README_SUMMARY_START);
  const end = readme.indexOf(README_SUMMARY_END);
  if (start === -1 || end < start)
    throw new Error(`README.md needs ${README_SUMMARY_START} … ${README_SUMMARY_END}`);
  return (
    readme.slice(0, start + README_SUMMARY_START.length) + `\n${summary}\n\n` + readme.slice(end)
  );
}

/** The text between the README's summary markers, as `withReadmeSummary` writes it. */
export function readmeSummaryBlock(readme: string): string {
  const start = readme.indexOf(README_SUMMARY_START);
  const end = readme.indexOf(README_SUMMARY_END);
  if (start === -1 || end < start)
    throw new Error(`README.md needs ${README_SUMMARY_START} … ${README_SUMMARY_END}`);
  return readme.slice(start + README_SUMMARY_START.length, end).trim();
}

/**
 * Writes docs/benchmarks.md and docs/benchmarks.svg for `report`, then the README's summary
 * from that benchmarks.md, so the three always describe the same run.
 */
export function writeDocs(root: string, report: Report): void {
  const benchmarks = markdown(report);
  writeFileSync(join(root, 'docs/benchmarks.md'), benchmarks);
  writeFileSync(join(root, 'docs/benchmarks.svg'), svgChart(report));
  const readmeFile = join(root, 'README.md');
  const readme = readFileSync(readmeFile, 'utf8');
  writeFileSync(readmeFile, withReadmeSummary(readme, readmeSummary(benchmarks)));
}

// ---------------------------------------------------------------------------------------------
// Chart

const CHART_METRICS: { scenario: ScenarioName; metric: string; label: string; note: string }[] = [
  { scenario: 'latency', metric: 'p50Us', label: 'latency p50', note: 'lower is better' },
  { scenario: 'msgrate', metric: 'roundTripsPerSec', label: 'msgrate', note: 'higher is better' },
  { scenario: 'bulk', metric: 'mbPerSec', label: 'bulk MB/s', note: 'higher is better' },
  { scenario: 'connect', metric: 'perSec', label: 'connect/s', note: 'higher is better' },
  { scenario: 'idle', metric: 'kibPerConn', label: 'idle KiB/conn', note: 'lower is better' },
];

const COLORS: Record<TargetName, string> = {
  direct: '#9aa0a6',
  nginx: '#2e9d5b',
  portico: '#3367d6',
  splice: '#e8a33d',
};

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A grouped bar chart: each scenario's median per target divided by direct's. */
export function svgChart(report: Report): string {
  const groups = CHART_METRICS.filter((g) => report.scenarios.includes(g.scenario));
  const targets = report.targets;
  const W = 820;
  const H = 420;
  const left = 56;
  const right = 16;
  const top = 70;
  const bottom = 70;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const ratios = groups.map((g) =>
    targets.map((t) =>
      ratio(value(report, t, g.scenario, g.metric), value(report, 'direct', g.scenario, g.metric)),
    ),
  );
  const finite = ratios.flat().filter(Number.isFinite);
  const maxRatio = Math.max(1.5, ...finite);
  const step = maxRatio > 6 ? 2 : maxRatio > 3 ? 1 : 0.5;
  const yMax = Math.ceil((maxRatio * 1.08) / step) * step;
  const y = (r: number): number => top + plotH - (r / yMax) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="600" fill="#202124">` +
      `WebSocket echo through Portico and nginx, relative to a direct connection (= 1.0)</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#5f6368">` +
      esc(
        `${report.machine.cpuModel}, ${report.machine.cores} cores · medians of ${report.runs} run(s) · ` +
          `${report.date.slice(0, 10)}${report.quick ? ' · QUICK RUN' : ''}`,
      ) +
      `</text>`,
  );
  // Grid and axis.
  for (let r = 0; r <= yMax + 1e-9; r += step) {
    const yy = y(r).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${W - right}" y2="${yy}" stroke="#e8eaed"/>`,
      `<text x="${left - 6}" y="${(y(r) + 4).toFixed(1)}" text-anchor="end" fill="#5f6368">${r.toFixed(1)}×</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${y(1).toFixed(1)}" x2="${W - right}" y2="${y(1).toFixed(1)}" ` +
      `stroke="#5f6368" stroke-dasharray="4 3"/>`,
  );
  const groupW = plotW / Math.max(1, groups.length);
  const barW = Math.min(44, (groupW * 0.75) / Math.max(1, targets.length));
  groups.forEach((g, gi) => {
    const cx = left + groupW * gi + groupW / 2;
    const x0 = cx - (barW * targets.length) / 2;
    targets.forEach((t, ti) => {
      const r = ratios[gi][ti];
      const x = x0 + ti * barW;
      if (!Number.isFinite(r)) {
        out.push(
          `<text x="${(x + barW / 2).toFixed(1)}" y="${(top + plotH - 4).toFixed(1)}" ` +
            `text-anchor="middle" fill="#5f6368" font-size="10">n/a</text>`,
        );
        return;
      }
      const yy = y(r);
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 4).toFixed(1)}" ` +
          `height="${(top + plotH - yy).toFixed(1)}" fill="${COLORS[t]}">` +
          `<title>${esc(`${t} ${g.label}: ${r.toFixed(2)}× direct`)}</title></rect>`,
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(yy - 4).toFixed(1)}" text-anchor="middle" ` +
          `font-size="10" fill="#202124">${r.toFixed(2)}</text>`,
      );
    });
    out.push(
      `<text x="${cx.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle" font-weight="600" ` +
        `fill="#202124">${esc(g.label)}</text>`,
      `<text x="${cx.toFixed(1)}" y="${top + plotH + 33}" text-anchor="middle" fill="#5f6368" ` +
        `font-size="11">${esc(g.note)}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" stroke="#5f6368"/>`,
  );
  // Legend.
  const legendX = W / 2 - (targets.length * 90) / 2;
  targets.forEach((t, i) => {
    const x = legendX + i * 90;
    out.push(
      `<rect x="${x}" y="${H - 22}" width="12" height="12" fill="${COLORS[t]}"/>`,
      `<text x="${x + 17}" y="${H - 12}" fill="#202124">${t}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
