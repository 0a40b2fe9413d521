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
  /** What the scenario said besides numbers (the storm's failure reasons). */
  notes?: string[];
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
  /** Why the storm used fewer clients than asked (the open-file limit); absent in older results. */
  stormNote?: string;
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

const row = (
  scenario: ScenarioName,
  metric: string,
  label: string,
  better: Row['better'],
  digits: number,
): Row => ({ scenario, metric, label, better, digits });

/**
 * The rows of the Results table (and of "Every run"). "Proxy CPU" is one process's CPU time
 * over the measured window: nginx's worker, Portico's main process (not its plugin child), the
 * splice; for direct, the echo server itself. "Upstream" is the echo server behind the proxy.
 */
export const ROWS: Row[] = [
  row('latency', 'p50Us', 'latency p50 (µs)', 'lower', 0),
  row('latency', 'p99Us', 'latency p99 (µs)', 'lower', 0),
  row('latency', 'maxUs', 'latency max (µs)', 'lower', 0),
  row('msgrate', 'roundTripsPerSec', 'msgrate (round trips/s)', 'higher', 0),
  row('bulk', 'mbPerSec', 'bulk (MB/s)', 'higher', 1),
  row('connect', 'perSec', 'connect (handshakes/s)', 'higher', 0),
  row('connect', 'handshakeP50Ms', 'connect p50 (ms)', 'lower', 2),
  row('connect', 'handshakeP99Ms', 'connect p99 (ms)', 'lower', 2),
  row('connect', 'proxyCpuUsPerHandshake', 'connect: proxy CPU per handshake (µs)', 'lower', 0),
  row(
    'connect',
    'upstreamCpuUsPerHandshake',
    'connect: upstream CPU per handshake (µs)',
    'lower',
    0,
  ),
  row('connect-distinct', 'perSec', 'connect, distinct tokens (handshakes/s)', 'higher', 0),
  row('connect-distinct', 'handshakeP50Ms', 'connect, distinct tokens p50 (ms)', 'lower', 2),
  row('connect-distinct', 'handshakeP99Ms', 'connect, distinct tokens p99 (ms)', 'lower', 2),
  row(
    'connect-distinct',
    'proxyCpuUsPerHandshake',
    'connect, distinct tokens: proxy CPU per handshake (µs)',
    'lower',
    0,
  ),
  row(
    'connect-distinct',
    'upstreamCpuUsPerHandshake',
    'connect, distinct tokens: upstream CPU per handshake (µs)',
    'lower',
    0,
  ),
  row('rate5', 'proxyCpuUsPerRoundTrip', 'rate5: proxy CPU per round trip (µs)', 'lower', 1),
  row('rate5', 'upstreamCpuUsPerRoundTrip', 'rate5: upstream CPU per round trip (µs)', 'lower', 1),
  row('rate5', 'roundTripsPerSec', 'rate5: round trips/s', 'higher', 0),
  row('rate5', 'latencyP50Ms', 'rate5: latency p50 (ms)', 'lower', 2),
  row('rate5', 'latencyP99Ms', 'rate5: latency p99 (ms)', 'lower', 2),
  row('rate10', 'proxyCpuUsPerRoundTrip', 'rate10: proxy CPU per round trip (µs)', 'lower', 1),
  row(
    'rate10',
    'upstreamCpuUsPerRoundTrip',
    'rate10: upstream CPU per round trip (µs)',
    'lower',
    1,
  ),
  row('rate10', 'roundTripsPerSec', 'rate10: round trips/s', 'higher', 0),
  row('rate10', 'latencyP50Ms', 'rate10: latency p50 (ms)', 'lower', 2),
  row('rate10', 'latencyP99Ms', 'rate10: latency p99 (ms)', 'lower', 2),
  row('storm', 'stormSeconds', 'storm: last echo after (s)', 'lower', 2),
  row('storm', 'echoP50Seconds', 'storm: echo p50 (s)', 'lower', 2),
  row('storm', 'failures', 'storm: failed clients', 'lower', 0),
  row('storm', 'kernelListenOverflows', 'storm: listen overflows (machine-wide)', 'lower', 0),
  row('storm', 'kernelTCPSynRetrans', 'storm: SYN retransmits (machine-wide)', 'lower', 0),
  row('storm', 'proxyCpuUsPerClient', 'storm: proxy CPU per client (µs)', 'lower', 0),
  row('idle', 'kibPerConn', 'idle memory (KiB/connection)', 'lower', 1),
  row('idle', 'idleFlatness', 'idle: dearest step / average (1 = flat)', 'lower', 2),
  row('idle', 'rssRestMiB', 'idle: RSS at rest (MiB)', 'lower', 1),
];

interface Goal {
  scenario: ScenarioName;
  metric: string;
  versus: TargetName;
  op: '>=' | '<=';
  factor: number;
  text: string;
  /**
   * A condition on Portico's own value that must hold in every run too (zero storm failures,
   * flat idle memory): a median would hide one bad run.
   */
  own?: { metric: string; op: '>=' | '<='; value: number; text: string; digits: number };
}

/** What issue 15 asks of the relay, checked on every run. */
export const GOALS: Goal[] = [
  {
    scenario: 'storm',
    metric: 'stormSeconds',
    versus: 'nginx',
    op: '<=',
    factor: 1.0,
    text: 'storm: last echo ≤ 1.0× nginx, 0 failures in every run',
    own: { metric: 'failures', op: '<=', value: 0, text: 'failed clients', digits: 0 },
  },
  {
    scenario: 'connect-distinct',
    metric: 'proxyCpuUsPerHandshake',
    versus: 'nginx',
    op: '<=',
    factor: 2.0,
    text: 'proxy CPU per handshake, distinct tokens ≤ 2× nginx',
  },
  {
    scenario: 'connect-distinct',
    metric: 'perSec',
    versus: 'nginx',
    op: '>=',
    factor: 0.65,
    text: 'connects/s, distinct tokens ≥ 0.65× nginx',
  },
  {
    scenario: 'rate5',
    metric: 'proxyCpuUsPerRoundTrip',
    versus: 'nginx',
    op: '<=',
    factor: 1.2,
    text: 'proxy CPU per round trip, 1,000 connections × 5 msg/s ≤ 1.2× nginx',
  },
  {
    scenario: 'rate10',
    metric: 'proxyCpuUsPerRoundTrip',
    versus: 'nginx',
    op: '<=',
    factor: 1.2,
    text: 'proxy CPU per round trip, 1,000 connections × 10 msg/s ≤ 1.2× nginx',
  },
  {
    scenario: 'idle',
    metric: 'kibPerConn',
    versus: 'nginx',
    op: '<=',
    factor: 1.0,
    text: 'idle KiB/connection ≤ nginx, flat (no step above 1.25× the average) in every run',
    own: { metric: 'idleFlatness', op: '<=', value: 1.25, text: 'dearest step', digits: 2 },
  },
];

/** The ratios issue #3 asked for, still shown for comparison. */
export const EARLIER_GOALS: Goal[] = [
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
    text: 'connect/s (one reused token) ≥ 0.8× nginx',
  },
];

/** The finite numbers among `values` (NaN crosses the IPC channel and JSON as null). */
function finite(values: (number | null | undefined)[]): number[] {
  return values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

/** Median of the finite values; NaN when there are none. */
export function median(values: (number | null | undefined)[]): number {
  const sorted = finite(values).sort((a, b) => a - b);
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

/** A metric of one target in every run that measured it, in run order. */
function perRun(
  report: Report,
  target: TargetName,
  scenario: ScenarioName,
  metric: string,
): number[] {
  return finite(
    report.records
      .filter((r) => r.scenario === scenario && r.target === target)
      .sort((a, b) => a.run - b.run)
      .map((r) => r.metrics[metric]),
  );
}

function fmt(n: number | null | undefined, digits: number): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The median, and after it the spread over the runs (min–max) when there were several. */
function withSpread(
  report: Report,
  target: TargetName,
  scenario: ScenarioName,
  metric: string,
  digits: number,
): string {
  const mid = fmt(value(report, target, scenario, metric), digits);
  const runs = perRun(report, target, scenario, metric);
  if (runs.length < 2) return mid;
  const lo = fmt(Math.min(...runs), digits);
  const hi = fmt(Math.max(...runs), digits);
  // Every run measured the same: nothing to add.
  return lo === hi ? mid : `${mid} (${lo}–${hi})`;
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
    const cell = (t: TargetName): string =>
      withSpread(report, t, row.scenario, row.metric, row.digits);
    lines.push(
      `| ${row.label} | ${row.better} | ${cell('direct')} | ${cell('nginx')} | ` +
        `${cell('portico')} | ${fmtRatio(ratio(v('portico'), v('direct')))} | ` +
        `${fmtRatio(ratio(v('portico'), v('nginx')))} | ${fmtRatio(ratio(v('nginx'), v('direct')))} |` +
        (splice
          ? ` ${cell('splice')} | ${fmtRatio(ratio(v('splice'), v('nginx')))} | ` +
            `${fmtRatio(ratio(v('portico'), v('splice')))} |`
          : ''),
    );
  }
  return lines.join('\n');
}

/**
 * One row per goal: the ratio of the medians, whether it is met, the paired ratio run by run
 * (each run measures the targets back to back) and in how many runs it was met.
 */
export function goalsTable(report: Report, goals: Goal[] = GOALS, title = 'issue 15'): string {
  if (!goals.some((g) => report.scenarios.includes(g.scenario))) return '';
  const lines = [
    `| goal (${title}) | measured (medians) | met | run by run | runs meeting it |`,
    '|---|--:|:-:|--:|--:|',
  ];
  for (const g of goals) {
    if (!report.scenarios.includes(g.scenario)) continue;
    const meets = (r: number): boolean => (g.op === '>=' ? r >= g.factor : r <= g.factor);
    const own = g.own;
    const ownMeets = (v: number): boolean =>
      own === undefined || (own.op === '>=' ? v >= own.value : v <= own.value);
    const r = ratio(
      value(report, 'portico', g.scenario, g.metric),
      value(report, g.versus, g.scenario, g.metric),
    );
    const runs = pairedRatios(report, g.scenario, g.metric, g.versus);
    const ownRuns = own ? runs.map((p) => ownValue(report, g.scenario, own.metric, p.run)) : [];
    const ownAll = own ? perRun(report, 'portico', g.scenario, own.metric) : [];
    const ownOk = ownAll.length > 0 && ownAll.every(ownMeets);
    const met = !Number.isFinite(r)
      ? 'n/a'
      : meets(r) && (own === undefined || ownOk)
        ? 'yes'
        : '**no**';
    const ratios = runs.map((p) => p.ratio);
    const range =
      ratios.length === 0
        ? 'n/a'
        : `${Math.min(...ratios).toFixed(2)}–${fmtRatio(Math.max(...ratios))}`;
    const ownText = own ? `; ${own.text} ${span(ownAll, own.digits)}` : '';
    const meeting = runs.filter((p, i) => meets(p.ratio) && (!own || ownMeets(ownRuns[i]))).length;
    lines.push(
      `| ${g.text} | ${fmtRatio(r)} ${g.versus} | ${met} | ${range}${ownText} | ` +
        `${meeting} of ${runs.length} |`,
    );
  }
  return lines.join('\n');
}

/** The range of `values` ("a–b", or one value when they agree); n/a when there are none. */
function span(values: number[], digits: number): string {
  if (values.length === 0) return 'n/a';
  const lo = fmt(Math.min(...values), digits);
  const hi = fmt(Math.max(...values), digits);
  return lo === hi ? lo : `${lo}–${hi}`;
}

function ownValue(report: Report, scenario: ScenarioName, metric: string, run: number): number {
  const v = report.records.find(
    (r) => r.scenario === scenario && r.target === 'portico' && r.run === run,
  )?.metrics[metric];
  return typeof v === 'number' ? v : NaN;
}

/** Portico's value divided by `versus`'s in the same run, for every run that measured both. */
function pairedRatios(
  report: Report,
  scenario: ScenarioName,
  metric: string,
  versus: TargetName,
): { run: number; ratio: number }[] {
  const of = (target: TargetName, run: number): number =>
    report.records.find((r) => r.scenario === scenario && r.target === target && r.run === run)
      ?.metrics[metric] ?? NaN;
  const out: { run: number; ratio: number }[] = [];
  for (let run = 1; run <= report.runs; run++) {
    const r = ratio(of('portico', run), of(versus, run));
    if (Number.isFinite(r)) out.push({ run, ratio: r });
  }
  return out;
}

/** Per target: how the storm went, with the kernel's view of it. */
export function stormTable(report: Report): string {
  const lines = [
    '| target | clients | last echo after (s) | echo p50 (s) | failed clients, run by run | ' +
      'listen overflows | listen drops | SYN retransmits | retransmitted segments | ' +
      'longest accept queue / backlog | accept queue full (s) | upstream: longest accept queue / backlog | ' +
      'proxy CPU per client (µs) | load client CPU |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const target of report.targets) {
    const m = report.medians[target]?.storm;
    if (!m) continue;
    const cell = (metric: string, digits = 0): string =>
      withSpread(report, target, 'storm', metric, digits);
    const upstreamQueue =
      target === 'direct'
        ? '–'
        : `${cell('upstreamListenerAcceptQueueMax')} / ${fmt(m.upstreamListenerBacklog, 0)}`;
    const failures = report.records
      .filter((r) => r.scenario === 'storm' && r.target === target)
      .sort((a, b) => a.run - b.run)
      .map((r) => fmt(r.metrics.failures, 0));
    lines.push(
      `| ${target} | ${fmt(m.clients, 0)} | ${cell('stormSeconds', 2)} | ${cell('echoP50Seconds', 2)} | ` +
        `${failures.join(', ')} | ${cell('kernelListenOverflows')} | ${cell('kernelListenDrops')} | ` +
        `${cell('kernelTCPSynRetrans')} | ${cell('kernelRetransSegs')} | ` +
        `${cell('listenerAcceptQueueMax')} / ${fmt(m.listenerBacklog, 0)} | ` +
        `${cell('listenerAcceptQueueFullSeconds', 2)} | ` +
        `${upstreamQueue} | ` +
        `${cell('proxyCpuUsPerClient')} | ` +
        `${fmt(m.clientCpuPct, 0)}% |`,
    );
  }
  return lines.join('\n');
}

/** Storm failures by reason, as the load client reported them. */
function stormFailureNotes(report: Report): string {
  const notes = report.records
    .filter((r) => r.scenario === 'storm' && (r.notes?.length ?? 0) > 0)
    .sort((a, b) => a.run - b.run || a.target.localeCompare(b.target))
    .flatMap((r) => (r.notes ?? []).map((note) => `- run ${r.run}, ${r.target}: ${note}`));
  return notes.length === 0 ? 'No storm client failed in any run.' : notes.join('\n');
}

/** Per target: RSS at rest, then KiB per connection for each step of the idle scenario. */
export function idleStepsTable(report: Report): string {
  const steps = Math.max(
    0,
    ...report.records.filter((r) => r.scenario === 'idle').map((r) => r.metrics.steps ?? 0),
  );
  if (steps === 0) return '';
  const any = report.records.find((r) => r.scenario === 'idle' && r.metrics.steps === steps);
  const bounds = [
    0,
    ...Array.from({ length: steps }, (_, k) => any?.metrics[`step${k + 1}Connections`] ?? NaN),
  ];
  const n = (x: number): string => x.toLocaleString('en-US');
  const headings = bounds.slice(1).map((to, k) => `${n(bounds[k])} → ${n(to)}`);
  const lines = [
    `| target | RSS fresh (MiB) | RSS at rest (MiB) | ${headings.join(' | ')} | all | dearest step / all |`,
    `|---|--:|--:|${headings.map(() => '--:').join('|')}|--:|--:|`,
  ];
  for (const target of report.targets) {
    if (!report.medians[target]?.idle) continue;
    const cell = (metric: string, digits: number): string =>
      withSpread(report, target, 'idle', metric, digits);
    const stepCells = headings.map((_, k) => cell(`step${k + 1}KibPerConn`, 1));
    lines.push(
      `| ${target} | ${cell('rssStartMiB', 1)} | ${cell('rssRestMiB', 1)} | ${stepCells.join(' | ')} | ` +
        `${cell('kibPerConn', 1)} | ${cell('idleFlatness', 2)} |`,
    );
  }
  return lines.join('\n');
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
  const has = (s: ScenarioName): boolean => report.scenarios.includes(s);
  const spreadNote =
    report.runs > 1
      ? `Each value is the median of ${report.runs} runs, followed by the spread over the runs
(min–max) in parentheses when they differed. `
      : '';
  const sections: string[] = [];
  if (has('storm'))
    sections.push(`## Reconnect storm

${n(p.stormClients)} clients connect at the same moment, each sends one message and waits for
its echo (see Method). Medians with the spread over the runs; failed clients are listed run by
run. The kernel counters are deltas over the storm for the whole machine (they include the
client's side and anything else running), from \`/proc/net/netstat\` and \`/proc/net/snmp\`;
the accept queues are those of the proxy's and the echo upstream's listening sockets
(\`ss -ltn\` every 250 ms: Recv-Q, connections the kernel completed that the process has not
accepted yet, against the backlog the kernel granted).

${stormTable(report)}

${stormFailureNotes(report)}`);
  if (has('idle') && idleStepsTable(report) !== '')
    sections.push(`## Idle memory by step

RSS of the proxy process when freshly started and at rest (after 100 warm-up connections came
and went), then KiB per connection for each step as the idle connections are opened: flat
means every step costs about the same (the last column is the dearest step over the average).

${idleStepsTable(report)}`);
  return `# Benchmarks

<!-- Generated by \`npm run bench\` (bench/bench.ts). Do not edit by hand: re-run the bench. -->

How fast is a WebSocket through Portico, compared with a direct connection to the plugin and with
nginx in front of it? One invocation measures them side by side against the same echo plugin
(\`plugins/echo/server.js\`), together with a bare Node.js byte splice as a yardstick for what
any Node relay can do on this machine.

${machineLines(report)}

Reproduce with \`npm run bench\` (about 25 minutes; installs Debian's nginx with apt-get if it is
missing) or \`npm run bench -- --quick\` for a smoke run; options are described in
[\`bench/README.md\`](../bench/README.md).

![Each scenario per target, normalised to direct](benchmarks.svg)

## Results

${resultsTable(report)}

${spreadNote}Ratios are plain quotients of the medians; whether a larger ratio is good depends
on the "better" column. "Proxy CPU" is the CPU time of one process over the measured window:
nginx's worker, Portico's main process (not its echo child), the splice; for direct, the echo
server itself. "Upstream" is the echo server behind the proxy.

## Goals

${goalsTable(report)}

${
  goalsTable(report, EARLIER_GOALS, 'issue #3') === ''
    ? ''
    : `Earlier goals (issue #3), for comparison:

${goalsTable(report, EARLIER_GOALS, 'issue #3')}

`
}${sections.join('\n\n')}${sections.length > 0 ? '\n\n' : ''}## CPU use

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
  else default (its listen backlog too: 511) ([\`bench/nginx.conf.template\`](../bench/nginx.conf.template)), proxying
  \`/plugin-ws/echo\` to the same echo process as direct; **portico** — \`node dist/main.js\` with
  \`npm start\`'s Node flags (\`--max-semi-space-size=2\`, as the image runs it) after
  \`npm run build\` (\`NODE_ENV=production\`, \`LOG_LEVEL=warn\`, every other setting at its
  default), with a
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
  mismatch, unexpected close, or 10 s without progress fails the whole run with a non-zero exit
  — except in the storm, which counts its failed clients by reason and reports them.
- **CPU time** of a process is utime + stime from \`/proc/<pid>/stat\` (all its threads, in
  ticks of 10 ms) read at the start and the end of the measured window.
- **Quiet machine**: before each measurement the harness waits (up to a minute, five minutes per
  invocation) until processes other than its own use under 15% of a core, and it records the
  other load during every measurement (see "Other load" above and the CPU table).
- **Order**: the targets run one after the other for each scenario, and the order of the
  targets rotates from one run to the next.
- **Warm-up round**: ${
    report.warmup === true
      ? `before run 1, every scenario except idle ran once on every target with shorter counts
  (${n(warm.latencyRoundTrips)} latency round trips, ${warm.msgrateSeconds} s of msgrate, ${warm.bulkSeconds} s of bulk,
  ${n(warm.connectCount)} connect cycles${has('rate5') || has('rate10') ? `, ${warm.rateSeconds} s of each fixed rate` : ''}${has('storm') ? `, a storm of ${n(warm.stormClients)} clients` : ''}), checked like the others but not recorded. Portico, the
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
  verified-token cache (see the README's security model). Proxy (upstream) CPU per handshake:
  the process's CPU time over the measured cycles divided by their number — each cycle is a
  handshake, one echo and a close.${
    has('connect-distinct')
      ? `
- **connect, distinct tokens** (\`connect-distinct\`): the same cycles and counts, but every
  connection presents its own token (a different \`sub\`, minted with the target's secret by the
  load client before the measured window; direct and nginx get tokens of the same size that
  they do not check), so Portico and the splice verify a signature they have never seen on
  every handshake, as in a storm of reconnects from many users.`
      : ''
  }${
    has('rate5') || has('rate10')
      ? `
- **rate5 / rate10**: ${n(p.rateConnections)} connections, each sending one ${p.messageBytes}-byte
  message every 200 ms (rate5) or 100 ms (rate10), spread evenly over the period (a 1 ms timer
  sends whatever is due, each message on a different connection), without waiting for echoes;
  ${p.rateWarmupSeconds} s at that rate before a measured window of ${p.rateSeconds} s. Round
  trips/s completed in the window, latency (send to echo) of the messages sent in it, and
  proxy (upstream) CPU per round trip: the process's CPU time over the window divided by the
  round trips completed in it.`
      : ''
  }${
    has('storm')
      ? `
- **storm**: before each storm the harness waits until no connection of an earlier scenario
  is left on any server's port (TIME_WAIT aside). Then ${n(p.stormClients)} clients, each with
  its own token (as in connect-distinct), ${p.stormClientsPerAddress} per loopback source address
  (127.0.0.2, 127.0.0.3, …: separate clients, and never short of ports), are created in one
  synchronous loop; each sends one ${p.messageBytes}-byte message when its connection opens and
  waits for the echo, and stays open until every client is done. A client without its echo
  ${p.stormTimeoutMs / 1000} s after the start gives up. Reported: the time from the first
  connect to the last echo, the echo time's median, failed clients (refused, reset, an HTTP
  status instead of 101, closed before the echo, timed out), the kernel counters and the
  accept queue described above, and the proxy's CPU time divided by the clients.${report.stormNote ? `\n  ${report.stormNote}` : ''}`
      : ''
  }
- **idle**: on freshly started processes (a new echo, nginx or Portico for every run, because
  memory freed by earlier connections stays in RSS and would be reused): RSS read once
  ("fresh"), then 100 warm-up connections opened, echoed and closed and 1 s of rest ("at
  rest"), then ${n(p.idleConnections)} connections opened and left idle, in steps (to
  ${idleCheckpointsText(report)}; 1,000 per loopback source address); VmRSS of the proxy
  process from \`/proc/<pid>/status\` at the end of each step once it has settled (four
  readings 500 ms apart within 1%, after 1 s — ${p.idleSettleMs / 1000} s for the last step —
  and at most 5 s more — 10 s for the last). KiB per connection of a step is its RSS growth
  divided by the connections it added; the headline is the growth from "at rest" to all of
  them
  (for direct that is the echo server's own memory; for nginx the worker process; for Portico
  the host process, not its echo child); afterwards every connection must still echo one
  message.${report.idleNote ? `\n  ${report.idleNote}` : ''}
- Raw numbers of every run are in \`bench/results/<timestamp>.json\` (not committed).
`;
}

/** "1,000, 2,500, 5,000 and 9,900 connections", from the runs' records. */
function idleCheckpointsText(report: Report): string {
  const any = report.records.find((r) => r.scenario === 'idle');
  const steps = any?.metrics.steps ?? 0;
  const points = Array.from({ length: steps }, (_, k) =>
    (any?.metrics[`step${k + 1}Connections`] ?? 0).toLocaleString('en-US'),
  );
  if (points.length === 0) return `${report.idleConnections.toLocaleString('en-US')} connections`;
  if (points.length === 1) return `${points[0]} connections`;
  return `${points.slice(0, -1).join(', ')} and ${points[points.length - 1]} connections`;
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
  'connect, distinct tokens (handshakes/s)',
  'rate10: proxy CPU per round trip (µs)',
  'storm: last echo after (s)',
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
  {
    scenario: 'connect-distinct',
    metric: 'perSec',
    label: 'connect/s, new tokens',
    note: 'higher is better',
  },
  {
    scenario: 'rate10',
    metric: 'proxyCpuUsPerRoundTrip',
    label: 'CPU/msg at 10 msg/s',
    note: 'lower is better',
  },
  { scenario: 'storm', metric: 'stormSeconds', label: 'storm: last echo', note: 'lower is better' },
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
  const W = Math.max(820, 80 + 120 * groups.length);
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
