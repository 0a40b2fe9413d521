import {
  README_SUMMARY_END,
  README_SUMMARY_START,
  readmeSummary,
  readmeSummaryBlock,
  withReadmeSummary,
} from '../../../bench/report';
import { readRepoFile } from './markdown';

/** A benchmarks.md reduced to what the summary reads: the header lines and the Results table. */
const BENCHMARKS = `# Benchmarks

- **Date**: 2030-01-02T03:04:05.000Z
- **Command**: \`npm run bench\`
- **Machine**: Test CPU, 2 cores, 1.0 GiB RAM, Linux 6.0
- **Portico**: commit abc1234
- **Runs**: 3; every number is the median of the runs

## Results

| metric | better | direct | nginx | portico | portico/direct | portico/nginx | nginx/direct |
|---|---|--:|--:|--:|--:|--:|--:|
| latency p50 (µs) | lower | 40 | 60 | 80 | 2.00× | 1.33× | 1.50× |
| latency p99 (µs) | lower | 100 | 200 | 300 | 3.00× | 1.50× | 2.00× |
| bulk (MB/s) | higher | 500.0 | 150.0 | 300.0 | 0.60× | 2.00× | 0.30× |

Ratios are plain quotients.
`;

describe('README performance summary', () => {
  it('is exactly what bench/report.ts generates from docs/benchmarks.md', () => {
    const expected = readmeSummary(readRepoFile('docs/benchmarks.md'));
    // On failure: re-render with `npm run bench -- --render bench/results/<run>.json`, or copy
    // the expected block into README.md between the bench:summary markers.
    expect(readmeSummaryBlock(readRepoFile('README.md'))).toBe(expected);
  });

  it('takes the headline rows, the ratio columns present and the run they come from', () => {
    const summary = readmeSummary(BENCHMARKS);
    expect(summary).toContain(
      'Latest run: 2030-01-02, Test CPU, 2 cores, 1.0 GiB RAM, Linux 6.0, Portico commit abc1234; ' +
        '`npm run bench`, medians of 3 runs.',
    );
    expect(summary).toContain('| metric | better | Portico / nginx | Portico / direct |\n');
    expect(summary).toContain('| latency p50 (µs) | lower | 1.33× | 2.00× |');
    expect(summary).toContain('| bulk (MB/s) | higher | 2.00× | 0.60× |');
    // Not a headline row, and no splice column when the splice was not measured.
    expect(summary).not.toContain('latency p99');
    expect(summary).not.toContain('splice');
  });

  it('refuses a benchmarks.md without a Results table or a header line', () => {
    expect(() => readmeSummary(BENCHMARKS.replace('## Results', '## Other'))).toThrow(
      /no Results table/,
    );
    expect(() => readmeSummary(BENCHMARKS.replace('- **Portico**', '- **Commit**'))).toThrow(
      /"Portico"/,
    );
  });

  it('rewrites only the text between the markers, and again to the same result', () => {
    const readme = `# X\n\nbefore\n${README_SUMMARY_START}\nold table\n${README_SUMMARY_END}\nafter\n`;
    const once = withReadmeSummary(readme, 'new table');
    expect(once).toBe(
      `# X\n\nbefore\n${README_SUMMARY_START}\nnew table\n\n${README_SUMMARY_END}\nafter\n`,
    );
    expect(withReadmeSummary(once, 'new table')).toBe(once);
    expect(readmeSummaryBlock(once)).toBe('new table');
  });

  it('refuses a README without the markers', () => {
    expect(() => withReadmeSummary('# X\n', 'table')).toThrow(/bench:summary:start/);
    expect(() => readmeSummaryBlock(`${README_SUMMARY_END}\n${README_SUMMARY_START}`)).toThrow();
  });
});
