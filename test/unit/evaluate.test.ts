import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEvaluateCommand } from '../../src/cli/evaluate.js';
import { loadModel, type Scorer } from '../../src/model/scorer.js';
import { parseTable } from '../../src/offline/data/table.js';
import { countConfusion, decisionsCsv, replayScorerOptions, replayTable, report } from '../../src/offline/evaluate/replay.js';
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

  it('writes one decisions line per input row, score empty while the window fills', async () => {
    const result = await replayTable(scorer, table);
    const lines = decisionsCsv(table, result).trimEnd().split('\n');
    expect(lines[0]).toBe('row,timestamp,score,anomaly');
    expect(lines).toHaveLength(table.rows + 1);
    expect(lines[1]).toMatch(/^0,2024-01-01T00:00:00\.000Z,,0$/);
    const first = Math.max(scorer.manifest.window - 1, scorer.manifest.baseline?.warmupRows ?? 0);
    expect(lines[first]).toMatch(new RegExp(`^${first - 1},[^,]+,,0$`));
    expect(lines[first + 1]).toMatch(new RegExp(`^${first},[^,]+,[\\d.e-]+,[01]$`));
  });

  it('the command prints the figures, as JSON on request, and writes --decisions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    writeFileSync(join(dir, 'l.csv'), labelledCsv);
    const { code, out } = await capture(() =>
      runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'l.csv'), '--json', '--decisions', join(dir, 'd.csv')]),
    );
    expect(code).toBe(0);
    const figures = JSON.parse(out) as Record<string, number>;
    const expected = report(countConfusion((await replayTable(scorer, table)).anomaly, table.labels.anomaly!));
    expect(figures).toMatchObject({ tp: expected.tp, fp: expected.fp, fn: expected.fn, tn: expected.tn, rows: 520 });
    expect(readFileSync(join(dir, 'd.csv'), 'utf8').split('\n')).toHaveLength(522);
  });

  it('the command fails clearly on a missing label column or file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-eval-'));
    writeFileSync(join(dir, 'n.csv'), simulateCsv({ seed: 1, rows: 50 }));
    const noLabel = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'n.csv')]));
    expect(noLabel.code).toBe(1);
    expect(noLabel.err).toMatch(/no label column "anomaly"/);
    const missing = await capture(() => runEvaluateCommand(['--model', DEFAULT_MODEL, '--input', join(dir, 'missing.csv')]));
    expect(missing.err).toMatch(/no such file/);
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
    const { files: results, total } = await evaluateSkab(dir);
    expect(results).toHaveLength(2);
    expect(total.tp + total.fp + total.fn + total.tn).toBe(2 * 300);
    expect(total.tp + total.fn).toBe(2 * 150);
    expect(total.tp).toBe(results.reduce((s, f) => s + f.tp, 0));
    expect(files).toHaveLength(2);
  });
});
