/**
 * Writes the catalogue of the security suite (test/security) into docs/security.md, between
 * `<!-- security-table:start -->` and `<!-- security-table:end -->`; the prose around the
 * markers is kept.
 *
 *   npm run security:report                    runs `jest test/security --json` first
 *   npm run security:report -- results.json    uses an existing Jest JSON report
 *   npm run security:report -- --out other.md  writes another file
 *
 * Each test is one row: `describe('<area>')` / `it('<hostile case> → <expected outcome>')`.
 * Exit code: 0 when every case behaved as expected, 1 when some failed (the table is written
 * either way), 2 when no report could be produced.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const SUITE = 'test/security';
const START = '<!-- security-table:start -->';
const END = '<!-- security-table:end -->';
const ARROW = '→';
const MAX_FAILURE_TEXT = 160;

/** The parts of Jest's `--json` report this script reads. */
interface JestAssertion {
  readonly ancestorTitles: readonly string[];
  readonly title: string;
  readonly status: string;
  readonly failureMessages?: readonly string[];
}

interface JestFileResult {
  readonly name: string;
  readonly status?: string;
  readonly message?: string;
  readonly assertionResults: readonly JestAssertion[];
}

interface JestReport {
  readonly testResults: readonly JestFileResult[];
}

export interface Row {
  readonly area: string;
  readonly hostileCase: string;
  readonly expected: string;
  readonly observed: string;
  readonly outcome: 'passed' | 'failed' | 'skipped';
  readonly file: string;
  readonly order: number;
}

interface Options {
  readonly input?: string;
  readonly out: string;
}

function parseArgs(argv: readonly string[]): Options {
  let input: string | undefined;
  let out = join(ROOT, 'docs/security.md');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--out') {
      const next = argv[++i];
      if (next === undefined) throw new Error('--out needs a file');
      out = resolve(next);
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${arg}`);
    } else {
      input = resolve(arg);
    }
  }
  return { input, out };
}

/** Runs the suite with Jest's JSON reporter; Jest's own progress goes to the terminal. */
function runSuite(outputFile: string): void {
  const jest = require.resolve('jest/bin/jest');
  const result = spawnSync(
    process.execPath,
    [jest, SUITE, '--json', `--outputFile=${outputFile}`],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (result.error !== undefined) throw result.error;
}

/** `hostile case → expected outcome`, split at the first arrow. */
export function splitTitle(title: string): { hostileCase: string; expected: string } {
  const at = title.indexOf(ARROW);
  if (at === -1) return { hostileCase: title.trim(), expected: '—' };
  return {
    hostileCase: title.slice(0, at).trim(),
    expected: title.slice(at + ARROW.length).trim() || '—',
  };
}

const ANSI = new RegExp(String.raw`\u001b\[[0-9;]*m`, 'g');

/**
 * The first line of a failure, as short as it can be while still saying something: Jest's
 * matcher header (`expect(received).toBe(expected)`) is followed by its Expected/Received lines.
 */
export function firstFailureLine(message: string | undefined): string {
  const lines = (message ?? '')
    .replace(ANSI, '')
    .split('\n')
    .map((l) => l.trim())
    // Stack frames, and Jest's `● Test suite failed to run` headings, say nothing of the cause.
    .filter((l) => l.length > 0 && !l.startsWith('at ') && !l.startsWith('●'));
  const first = (lines[0] ?? 'no message').replace(
    /^(Error|AssertionError|JestAssertionError): /,
    '',
  );
  let text = first;
  if (/^expect\(/.test(first)) {
    const detail = lines
      .slice(1)
      .filter((l) => /^(Expected|Received)\b/.test(l))
      .slice(0, 2);
    if (detail.length > 0) text = detail.join('; ');
  }
  return text.length > MAX_FAILURE_TEXT ? `${text.slice(0, MAX_FAILURE_TEXT - 1)}…` : text;
}

export function rowsOf(report: JestReport): Row[] {
  const rows: Row[] = [];
  for (const file of report.testResults) {
    const rel = relative(ROOT, file.name);
    if (file.status === 'failed' && !file.assertionResults.some((t) => t.status === 'failed')) {
      // Every test passed but a hook (beforeAll/afterAll) or the file itself failed.
      rows.push({
        area: basename(file.name).replace(/\.(e2e-)?spec\.ts$/, ''),
        hostileCase:
          file.assertionResults.length === 0 ? '(the file failed to run)' : '(setup or teardown)',
        expected: '—',
        observed: `FAILED: ${firstFailureLine(file.message)}`,
        outcome: 'failed',
        file: rel,
        order: -1,
      });
    }
    file.assertionResults.forEach((test, order) => {
      const { hostileCase, expected } = splitTitle(test.title);
      const outcome =
        test.status === 'passed' ? 'passed' : test.status === 'failed' ? 'failed' : 'skipped';
      rows.push({
        area: test.ancestorTitles.join(' › ') || basename(file.name),
        hostileCase,
        expected,
        observed:
          outcome === 'passed'
            ? 'as expected'
            : outcome === 'failed'
              ? `FAILED: ${firstFailureLine(test.failureMessages?.[0])}`
              : 'skipped',
        outcome,
        file: rel,
        order,
      });
    });
  }
  return rows.sort(
    (a, b) => a.area.localeCompare(b.area) || a.file.localeCompare(b.file) || a.order - b.order,
  );
}

/**
 * A table cell: one line; outside code spans, characters Markdown would read as emphasis, HTML
 * or links are escaped (titles quote hostile input such as `x-plugin-*` or `<script>`); pipes
 * are escaped everywhere, as GitHub's tables require.
 */
export function cell(text: string): string {
  return text
    .replace(/\r?\n/g, ' ')
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[\\`*_<>[\]]/g, '\\$&')))
    .join('')
    .replace(/\|/g, '\\|');
}

export function renderTable(rows: readonly Row[], command: string, date: Date): string {
  const count = (o: Row['outcome']): number => rows.filter((r) => r.outcome === o).length;
  const areas = new Set(rows.map((r) => r.area)).size;
  const files = new Set(rows.map((r) => r.file)).size;
  const lines = [
    `Generated ${date.toISOString().slice(0, 16).replace('T', ' ')} UTC by \`${command}\` ` +
      `from ${files} files in \`${SUITE}/\`.`,
    '',
    `**${rows.length} cases in ${areas} areas: ${count('passed')} as expected, ` +
      `${count('failed')} failed, ${count('skipped')} skipped.**`,
    '',
    '| area | case | expected | observed |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${cell(r.area)} | ${cell(r.hostileCase)} | ${cell(r.expected)} | ${cell(r.observed)} |`,
    ),
  ];
  return lines.join('\n');
}

/** `doc` with the text between the markers replaced (markers appended when missing). */
export function replaceBetweenMarkers(doc: string, content: string): string {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  const block = `${START}\n${content}\n${END}`;
  if (start === -1 || end === -1 || end < start) {
    return `${doc.replace(/\s*$/, '')}\n\n${block}\n`;
  }
  return doc.slice(0, start) + block + doc.slice(end + END.length);
}

/** A path relative to the repository when it is inside it, else absolute. */
function shownPath(path: string): string {
  const rel = relative(ROOT, path);
  return rel.startsWith('..') ? path : rel;
}

function main(): number {
  const options = parseArgs(process.argv.slice(2));
  let reportFile = options.input;
  let scratch: string | undefined;
  if (reportFile === undefined) {
    scratch = mkdtempSync(join(tmpdir(), 'portico-security-'));
    reportFile = join(scratch, 'jest-results.json');
    runSuite(reportFile);
  }
  let report: JestReport;
  try {
    report = JSON.parse(readFileSync(reportFile, 'utf8')) as JestReport;
  } catch (err) {
    process.stderr.write(`security-report: no Jest report at ${reportFile}: ${String(err)}\n`);
    return 2;
  } finally {
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  }
  const rows = rowsOf(report);
  if (rows.length === 0) {
    process.stderr.write(`security-report: the report lists no tests\n`);
    return 2;
  }
  const command =
    options.input === undefined
      ? 'npm run security:report'
      : `npm run security:report -- ${shownPath(options.input)}`;
  let doc = '';
  try {
    doc = readFileSync(options.out, 'utf8');
  } catch {
    doc = '# Security\n';
  }
  writeFileSync(options.out, replaceBetweenMarkers(doc, renderTable(rows, command, new Date())));
  const failed = rows.filter((r) => r.outcome === 'failed');
  process.stdout.write(
    `security-report: ${rows.length} cases, ${failed.length} failed → ${shownPath(options.out)}\n`,
  );
  for (const r of failed)
    process.stdout.write(`  FAILED ${r.area} › ${r.hostileCase}: ${r.observed}\n`);
  return failed.length > 0 ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (err) {
    process.stderr.write(`security-report: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
