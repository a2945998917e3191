import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEvaluateCommand } from '../../src/cli/evaluate.js';
import { loadModel, type Scorer } from '../../src/model/scorer.js';
import { parseTable } from '../../src/offline/data/table.js';
import { runSkabCommand } from '../../src/cli/eval-skab.js';
import {
  alertCounts,
  countConfusion,
  decisionsCsv,
  evaluateTable,
  fileFigures,
  pooledFigures,
  replayScorerOptions,
  replayTable,
  report,
  type FileFigures,
  type PooledFigures,
  type TableEvaluation,
} from '../../src/offline/evaluate/replay.js';
import { downsampleMinMax, escapeHtml, FIGURE as FIGURE_GEOMETRY, MAX_POINTS, reportHtml, scoreFigure, spans } from '../../src/offline/evaluate/report-html.js';
import { formatFileTable } from '../../src/offline/evaluate/report-table.js';
import { evaluateSkab } from '../../src/offline/evaluate/skab.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { DEFAULT_MODEL } from '../support/model.js';

const faults = [
  { kind: 'spike' as const, channel: 1, start: 150, length: 20 },
  { kind: 'drift' as const, channel: 3, start: 300, length: 120 },
];
const labelledCsv = simulateCsv({ seed: 99, rows: 520, faults });
const table = parseTable(Buffer.from(labelledCsv), 'labelled.csv');

let scorer: Scorer;
beforeAll(async () => {
  scorer = await loadModel(DEFAULT_MODEL, replayScorerOptions);
});
afterAll(async () => scorer.release());

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(s), true)) as typeof process.stderr.write;
  try {
    return { code: await fn(), out: out.join(''), err: err.join('') };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('evaluate', () => {
  it('replay does not depend on the batch size', async () => {
    const a = await replayTable(scorer, table, { batchSize: 1 });
    const b = await replayTable(scorer, table, { batchSize: 1024 });
    const c = await replayTable(scorer, table, { batchSize: 7 });
    expect(Array.from(a.anomaly)).toEqual(Array.from(b.anomaly));
    expect(Array.from(c.anomaly)).toEqual(Array.from(b.anomaly));
    // The first scored row: the window's last row, or the first after the baseline's warm-up.
    const first = Math.max(scorer.manifest.window - 1, scorer.manifest.baseline?.warmupRows ?? 0);
    // With a per-stream baseline an alert holds it from the batch that raised it on, so once an alert
    // has been raised the rows learned while that batch was in flight depend on the batch size: scores
    // are compared up to the first raise, decisions everywhere.
    const firstRaise = scorer.manifest.baseline === undefined ? table.rows : b.anomaly.indexOf(1);
    for (let i = first; i < (firstRaise < 0 ? table.rows : firstRaise); i++) {
      const x = a.scores[i] as number;
      const y = b.scores[i] as number;
      expect(Math.abs(x - y)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(y)));
    }
    expect(Number.isNaN(a.scores[first - 1])).toBe(true);
    expect(Number.isNaN(a.scores[first])).toBe(false);
  });

  it('flags each simulated fault and nothing outside a fault and its resolve tail', async () => {
    const result = await replayTable(scorer, table);
    const r = report(countConfusion(result.anomaly, table.labels.anomaly!));
    expect(r.recall).toBeGreaterThan(0.6);
    const { window, policy } = scorer.manifest;
    const tail = window + policy.resolveAfter;
    for (let row = 0; row < table.rows; row++) {
      const explained = faults.some((f) => row >= f.start && row < f.start + f.length + tail);
      if (!explained) expect(result.anomaly[row], `row ${row}`).toBe(0);
    }
  });

  it('computes the SKAB figures from the counts', () => {
    const r = report({ tp: 60, fp: 10, fn: 30, tn: 900 });
    expect(r.f1).toBeCloseTo(60 / (60 + 20), 10);
    expect(r.far).toBeCloseTo((10 / 910) * 100, 10);
    expect(r.mar).toBeCloseTo((30 / 90) * 100, 10);
    expect(r.precision).toBeCloseTo(60 / 70, 10);
    const c = countConfusion(Uint8Array.of(1, 1, 0, 0, 1), Uint8Array.of(1, 0, 1, 0, 1), 1);
    expect(c).toEqual({ tp: 1, fp: 1, fn: 1, tn: 1 });
  });

  it('writes one decisions line per input row: score (empty while the window fills), raised, and the label beside it', async () => {
    const evaluation = await evaluateTable(scorer, table, { file: 'labelled.csv', label: 'anomaly' });
    const lines = decisionsCsv([{ table, evaluation }], 'anomaly').trimEnd().split('\n');
    expect(lines[0]).toBe('row,timestamp,score,raised,anomaly');
    expect(lines).toHaveLength(table.rows + 1);
    expect(lines[1]).toMatch(/^0,2024-01-01T00:00:00\.000Z,,0,0$/);
    const first = Math.max(scorer.manifest.window - 1, scorer.manifest.baseline?.warmupRows ?? 0);
    expect(lines[first]).toMatch(new RegExp(`^${first - 1},[^,]+,,0,[01]$`));
    expect(lines[first + 1]).toMatch(new RegExp(`^${first},[^,]+,[\\d.e-]+,[01],[01]$`));
    // The last two columns are the decision state and the label, row for row.
    const cells = lines.slice(1).map((l) => l.split(','));
    expect(cells.map((c) => Number(c[3]))).toEqual(Array.from(evaluation.raised));
    expect(cells.map((c) => Number(c[4]))).toEqual(Array.from(table.labels.anomaly!));
    const withFile = decisionsCsv([{ table, evaluation }], 'anomaly', true).split('\n');
    expect(withFile[0]).toBe('file,row,timestamp,score,raised,anomaly');
    expect(withFile[1]).toMatch(/^labelled\.csv,0,/);
  });

  it('the command prints the figures, as JSON on request, and writes --decisions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    writeFileSync(join(dir, 'l.csv'), labelledCsv);
    const { code, out } = await capture(() =>
      runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'l.csv'), '--json', '--decisions', join(dir, 'd.csv')]),
    );
    expect(code).toBe(0);
    const json = JSON.parse(out) as { model: string; files: Array<Record<string, number | string>>; total: Record<string, number> };
    const anomaly = (await replayTable(scorer, table)).anomaly;
    const expected = report(countConfusion(anomaly, table.labels.anomaly!));
    expect(json.files).toHaveLength(1);
    expect(json.files[0]).toMatchObject({ file: join(dir, 'l.csv'), tp: expected.tp, fp: expected.fp, fn: expected.fn, tn: expected.tn, rows: 520, rejectedRows: 0 });
    expect(json.total).toMatchObject({ files: 1, tp: expected.tp, fp: expected.fp, fn: expected.fn, tn: expected.tn, rows: 520 });
    expect(readFileSync(join(dir, 'd.csv'), 'utf8').split('\n')).toHaveLength(522);
  });

  it('a folder: every CSV in natural order, one table row each and the pooled total', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    const csvs = new Map<string, string>();
    for (const [name, seed] of [['10.csv', 3], ['2.csv', 4], ['1.csv', 5]] as const) {
      const csv = simulateCsv({ seed, rows: 300, faults: [{ kind: 'spike', channel: 2, start: 100 + seed * 10, length: 15 }] });
      csvs.set(name, csv);
      writeFileSync(join(dir, name), csv);
    }
    const { code, out } = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', dir, '--json']));
    expect(code).toBe(0);
    const json = JSON.parse(out) as { files: FileFigures[]; total: PooledFigures };
    expect(json.files.map((f) => f.file)).toEqual(['1.csv', '2.csv', '10.csv']);
    for (const f of json.files) {
      const t = parseTable(Buffer.from(csvs.get(f.file)!), f.file);
      const state = (await replayTable(scorer, t)).anomaly;
      expect(f).toMatchObject(fileFigures(f.file, state, t.labels.anomaly!));
      expect(f.raised).toBeGreaterThanOrEqual(1);
    }
    const sum = (k: 'tp' | 'fp' | 'fn' | 'tn' | 'rows' | 'raised' | 'resolved'): number => json.files.reduce((s, f) => s + f[k], 0);
    expect(json.total).toMatchObject({ files: 3, tp: sum('tp'), fp: sum('fp'), fn: sum('fn'), tn: sum('tn'), rows: 900, raised: sum('raised'), resolved: sum('resolved') });
    // Pooled: F1 from the summed counts, not the mean of the files' F1.
    expect(json.total.f1).toBeCloseTo(sum('tp') / (sum('tp') + (sum('fn') + sum('fp')) / 2), 12);

    const text = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', dir]));
    const rows = text.out.split('\n').filter((l) => /^(\d+\.csv|total) /.test(l));
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(['1.csv', '2.csv', '10.csv', 'total']);
    expect(rows[3]!.split(/\s+/).slice(3, 8)).toEqual([String(json.total.rows), String(json.total.tp), String(json.total.fp), String(json.total.fn), String(json.total.tn)]);
  });

  it('the command fails clearly on a missing label column or file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    writeFileSync(join(dir, 'n.csv'), simulateCsv({ seed: 1, rows: 50 }));
    const noLabel = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'n.csv')]));
    expect(noLabel.code).toBe(1);
    expect(noLabel.err).toMatch(/no label column "anomaly"/);
    const missing = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'missing.csv')]));
    expect(missing.err).toMatch(/no such file/);
    // In a folder the unlabelled file is named, and nothing is replayed.
    writeFileSync(join(dir, 'l.csv'), labelledCsv);
    const folder = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', dir]));
    expect(folder.code).toBe(1);
    expect(folder.err).toContain(`${join(dir, 'n.csv')} has no label column "anomaly"`);
    expect(folder.out).toBe('');
    const empty = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    expect((await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', empty]))).err).toMatch(/holds no \.csv files/);
    expect((await capture(() => runEvaluateCommand(['--input', 'x.csv']))).code).toBe(2);
  });

  it('eval-skab trains on the first 400 rows of each file and sums the counts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-skab-'));
    mkdirSync(join(dir, 'valve'));
    const files = [0, 1].map((i) => {
      const csv = simulateCsv({ seed: 200 + i, rows: 700, labels: true, faults: [{ kind: 'drift', channel: 2, start: 500, length: 150 }] });
      writeFileSync(join(dir, 'valve', `${i}.csv`), csv.replaceAll(',', ';'));
      return csv;
    });
    const { files: results, total, evaluations } = await evaluateSkab(dir);
    expect(results).toHaveLength(2);
    expect(results.map((f) => f.file)).toEqual([join('valve', '0.csv'), join('valve', '1.csv')]);
    expect(total.tp + total.fp + total.fn + total.tn).toBe(2 * 300);
    expect(total.rows).toBe(2 * 300);
    expect(total.tp + total.fn).toBe(2 * 150);
    expect(total.tp).toBe(results.reduce((s, f) => s + f.tp, 0));
    expect(evaluations.map((e) => e.from)).toEqual([400, 400]);
    expect(files).toHaveLength(2);

    // The command prints the same per-file table as evaluate, and --report draws the training rows shaded.
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => {} };
    expect(await runSkabCommand([dir, '--report', join(dir, 'r.html')], io)).toBe(0);
    expect(out.join('\n')).toContain(formatFileTable(results, total));
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html.match(/<figure /g)).toHaveLength(2);
    expect(html.match(/<rect class="train"/g)).toHaveLength(2);
    expect(await runSkabCommand([dir, '--loo', '--report', 'x.html'], io)).toBe(2);

    // Each file trains the default family unless --family names the other one; an unknown family is exit 2.
    expect(out.join('\n')).toContain('each file trains a baseline-tests model on its first 400 rows');
    const pca: string[] = [];
    expect(await runSkabCommand([dir, '--family', 'window-pca-t2q'], { out: (l: string) => pca.push(l), err: () => {} })).toBe(0);
    expect(pca.join('\n')).toContain('each file trains a window-pca-t2q model on its first 400 rows');
    const pcaResults = await evaluateSkab(dir, 'anomaly', 'window-pca-t2q');
    expect(pca.join('\n')).toContain(formatFileTable(pcaResults.files, pcaResults.total));
    const bad: string[] = [];
    expect(await runSkabCommand([dir, '--family', 'pca'], { out: () => {}, err: (l: string) => bad.push(l) })).toBe(2);
    expect(bad.join('\n')).toContain('--family pca must be one of baseline-tests, window-pca-t2q');
  });
});

/** An evaluation built by hand, so the figure's geometry can be checked to the pixel. */
function handMade(file: string, scores: number[], labels: number[], raised: number[], from = 0): TableEvaluation {
  const l = Uint8Array.from(labels);
  const r = Uint8Array.from(raised);
  return {
    figures: fileFigures(file, r, l, from),
    scores: Float32Array.from(scores),
    raised: r,
    labels: l,
    from,
    thresholds: { raise: 10, clear: 5 },
    rejectedRows: 0,
  };
}

describe('per-file table and HTML report', () => {
  const n = 100;
  const scores = Array.from({ length: n }, (_, i) => (i < 19 ? Number.NaN : i >= 45 && i < 55 ? 12 : 1));
  const labels = Array.from({ length: n }, (_, i) => (i >= 40 && i < 60 ? 1 : 0));
  const raised = Array.from({ length: n }, (_, i) => (i >= 45 && i < 70 ? 1 : 0));

  it('counts alerts as changes of the decision state, from the first counted row on', () => {
    const state = Uint8Array.of(0, 1, 1, 0, 0, 1, 1, 1);
    expect(alertCounts(state)).toEqual({ raised: 2, resolved: 1 });
    // An alert already open at the first counted row was raised before it: not counted.
    expect(alertCounts(state, 2)).toEqual({ raised: 1, resolved: 1 });
    const f = fileFigures('a.csv', state, Uint8Array.of(0, 0, 1, 1, 0, 0, 1, 1), 2);
    expect(f).toMatchObject({ file: 'a.csv', rows: 6, tp: 3, fp: 1, fn: 1, tn: 1, raised: 1, resolved: 1 });
  });

  it('pools by summing counts (SKAB convention), not by averaging the files', () => {
    const a: FileFigures = { file: 'a', rows: 100, raised: 1, resolved: 1, ...report({ tp: 10, fp: 0, fn: 0, tn: 90 }) };
    const b: FileFigures = { file: 'b', rows: 100, raised: 2, resolved: 1, ...report({ tp: 0, fp: 50, fn: 10, tn: 40 }) };
    const total = pooledFigures([a, b]);
    expect(total).toMatchObject({ files: 2, rows: 200, tp: 10, fp: 50, fn: 10, tn: 130, raised: 3, resolved: 2 });
    expect(total.f1).toBeCloseTo(10 / (10 + 60 / 2), 12);
    expect(total.far).toBeCloseTo((50 / 180) * 100, 12);
    expect(total.mar).toBeCloseTo((10 / 20) * 100, 12);
  });

  it('the table: a header, one row per file with its numbers in their columns, a rule, then the total', () => {
    const files = [fileFigures('2.csv', Uint8Array.from(raised), Uint8Array.from(labels)), fileFigures('10.csv', new Uint8Array(n), Uint8Array.from(labels))];
    const lines = formatFileTable(files, pooledFigures(files)).split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['file', 'rows', 'TP', 'FP', 'FN', 'TN', 'precision', 'recall', 'F1', 'FAR %', 'MAR %', 'raised', 'resolved']);
    // 2.csv: alert rows 45–69, labels 40–59 → TP 15, FP 10, FN 5, TN 70.
    expect(lines[1]!.split(/\s+/)).toEqual(['2.csv', '100', '15', '10', '5', '70', '0.600', '0.750', '0.667', '12.50', '25.00', '1', '1']);
    expect(lines[2]!.split(/\s+/)).toEqual(['10.csv', '100', '0', '0', '20', '80', '0.000', '0.000', '0.000', '0.00', '100.00', '0', '0']);
    expect(lines[3]).toMatch(/^-+( +-+){12}$/);
    expect(lines[4]!.split(/\s{2,}/)).toEqual(['total (2 files)', '200', '15', '10', '25', '150', '0.600', '0.375', '0.462', '6.25', '62.50', '1', '1']);
    // Columns line up: every row is as wide as the rule, the numbers right-aligned under their headers.
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(formatFileTable(files.slice(0, 1), null).split('\n')).toHaveLength(2);
  });

  it('downsamples by min and max per bucket: a one-row spike survives, at most MAX_POINTS points', () => {
    const long = Array.from({ length: 100_000 }, (_, i) => Math.sin(i / 500));
    long[54_321] = 50;
    long[77_777] = -50;
    const line = downsampleMinMax(long);
    expect(line.rows.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(line.rows.length).toBeGreaterThan(MAX_POINTS / 2);
    expect(line.rows[line.values.indexOf(50)]).toBe(54_321);
    expect(line.rows[line.values.indexOf(-50)]).toBe(77_777);
    expect([...line.rows]).toEqual([...line.rows].sort((a, b) => a - b));
    // Short series pass through untouched; a bucket with no score keeps the gap.
    expect(downsampleMinMax([1, Number.NaN, 3]).values).toEqual([1, Number.NaN, 3]);
    const gap = downsampleMinMax(Array.from({ length: 10_000 }, (_, i) => (i < 5_000 ? Number.NaN : i)), 100);
    expect(Number.isNaN(gap.values[0])).toBe(true);
    expect(gap.values.filter((v) => !Number.isNaN(v)).length).toBeGreaterThan(0);
    expect(spans([0, 1, 1, 0, 1])).toEqual([
      [1, 3],
      [4, 5],
    ]);
  });

  it('a figure: one score path, both thresholds, label and alert spans at their rows, a marker per alert', () => {
    const svg = scoreFigure(handMade('a.csv', scores, labels, raised));
    const { width, left, right } = FIGURE_GEOMETRY;
    const x = (row: number): string => String(Math.round((left + (row / n) * (width - left - right)) * 10) / 10);
    expect(svg.match(/<path /g)).toHaveLength(1);
    expect(svg).toMatch(/<path class="score" d="M[^"]+"/);
    // The path starts at the first scored row (the window fills before it).
    expect(svg).toMatch(new RegExp(`<path class="score" d="M${x(19)} `));
    expect(svg.match(/<line class="raise"/g)).toHaveLength(1);
    expect(svg.match(/<line class="clear"/g)).toHaveLength(1);
    const label = svg.match(/<rect class="label" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g);
    expect(label).toHaveLength(1);
    expect(label![0]).toContain(`x="${x(40)}"`);
    expect(label![0]).toContain(`width="${Math.round((Number(x(60)) - Number(x(40))) * 10) / 10}"`);
    const alert = svg.match(/<rect class="alert" x="([\d.]+)"/g);
    expect(alert).toEqual([`<rect class="alert" x="${x(45)}"`]);
    expect(svg.match(/<polygon class="raised"/g)).toHaveLength(1);
    expect(svg.match(/<polygon class="resolved"/g)).toHaveLength(1);
    expect(svg).not.toContain('(log)');
    expect(svg).not.toContain('class="train"');
    // A score far above the raise threshold switches to a log axis; training rows are shaded.
    const log = scoreFigure(handMade('b.csv', scores.map((s) => s * 1000), labels, raised, 30));
    expect(log).toContain('score (log)');
    expect(log).toMatch(new RegExp(`<rect class="train" x="${x(0)}"[^>]* width="${Math.round((Number(x(30)) - Number(x(0))) * 10) / 10}"`));
  });

  it('the page: self-contained, the table on top, one figure per file, every name escaped', () => {
    const evil = `<img src=x onerror="alert(1)">&'.csv`;
    const files = [handMade(evil, scores, labels, raised), handMade('ok.csv', scores, labels, raised)];
    const html = reportHtml({ title: 'T <b>', notes: ['from <dir>'], label: 'anomaly"><script>', files, total: pooledFigures(files.map((f) => f.figures)) });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    // No script, no element that loads anything, no address: the escaped name is text, not a tag.
    expect(html).not.toMatch(/<script|<img|<link|<iframe|https?:|url\(/i);
    expect(html).toContain(escapeHtml(evil));
    expect(escapeHtml(evil)).toBe('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;.csv');
    expect(html).toContain('T &lt;b&gt;');
    expect(html.match(/<figure /g)).toHaveLength(2);
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html.indexOf('<table>')).toBeLessThan(html.indexOf('<figure '));
    // Header row, two files and the total; each file links to its figure.
    expect(html.match(/<tr[ >]/g)).toHaveLength(4);
    expect(html).toContain('<a href="#f1">ok.csv</a>');
    expect(html).toContain('<tr class="total"><td>total (2 files)</td>');
  });
});
