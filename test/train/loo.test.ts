import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSkabCommand } from '../../src/cli/eval-skab.js';
import { FIXED_BEFORE_LOO, choose, countTable, faultEnds, leaveOneFileOut, pcaFitGrid, policyGrid, testsFitGrid, type LooGrid, type LooReport } from '../../src/offline/evaluate/loo.js';
import type { Confusion } from '../../src/offline/evaluate/replay.js';
import { simulateCsv } from '../../src/offline/sim/record.js';

const c = (tp: number, fp: number, fn: number, tn: number): Confusion => ({ tp, fp, fn, tn });

describe('choose (the leave-one-file-out selection rule)', () => {
  // Two files; candidate 0 is quiet and blind, 1 sees everything but alarms too often on file 1, 2 is good.
  const rows = [
    [c(0, 0, 10, 90), c(0, 0, 10, 90)],
    [c(10, 0, 0, 90), c(10, 40, 0, 50)],
    [c(8, 2, 2, 88), c(8, 2, 2, 88)],
  ];
  const counts = countTable(rows);
  const all = [true, true, true];

  it('takes the highest pooled F1 among the candidates under the FAR limit', () => {
    expect(choose(counts, all, [0, 1], [[0, 1]], 10)).toBe(2);
    // File 1 alone: candidate 1 alarms on 44 % of its normal rows.
    expect(choose(counts, all, [1], [[1]], 10)).toBe(2);
    // File 0 alone: candidate 1 is perfect there.
    expect(choose(counts, all, [0], [[0]], 10)).toBe(1);
  });

  it('counts the false alarms of normal-only files in the FAR, never in the F1', () => {
    const withNormal = countTable(rows.map((row, k) => [...row, k === 2 ? c(0, 60, 0, 40) : c(0, 0, 0, 100)]));
    expect(choose(withNormal, all, [0, 1], [[0, 1]], 10)).toBe(2);
    // Pooled with the labelled files, candidate 2's 60 false alarms make 64 / 376 = 17 %: over the limit.
    expect(choose(withNormal, all, [0, 1], [[0, 1, 2]], 10)).toBe(0);
    // As a constraint of its own, the normal file's 60 % is over the limit too.
    expect(choose(withNormal, all, [0, 1], [[0, 1], [2]], 10)).toBe(0);
  });

  it('holds every constraint group to the limit separately, not pooled', () => {
    // Candidate 1: 1 % on the labelled files, 12 % on a small normal file: pooled 2.9 %, separately over.
    const small = countTable([
      [c(5, 0, 5, 100), c(0, 0, 0, 100)],
      [c(10, 1, 0, 99), c(0, 12, 0, 88)],
    ]);
    expect(choose(small, [true, true], [0], [[0, 1]], 10)).toBe(1);
    expect(choose(small, [true, true], [0], [[0], [1]], 10)).toBe(0);
  });

  it('falls back to the lowest worst-group FAR when no candidate is under the limit, and keeps to the allowed ones', () => {
    expect(choose(counts, all, [0, 1], [[0, 1]], 0)).toBe(0);
    expect(choose(counts, [false, false, true], [0, 1], [[0, 1]], 0)).toBe(2);
    expect(() => choose(counts, [false, false, false], [0], [[0]], 10)).toThrow(/no candidate/);
  });

  it('breaks ties by grid order', () => {
    expect(choose(countTable([rows[2]!, rows[2]!]), [true, true], [0, 1], [[0, 1]], 10)).toBe(0);
  });
});

describe('faultEnds (one raised per fault, resolved near its end)', () => {
  const u = (s: string): Uint8Array => Uint8Array.from(s, Number);
  it('counts the alerts overlapping each fault and how far after its end the last one resolved', () => {
    const labels = u('0011110000011100');
    const alerts = u('0001101110000110');
    // Fault 1 (rows 2..5): the alert at 3..4 resolves at row 5, one row before the fault's end (row 6);
    // the one at 6..8 starts after it. Fault 2 (rows 11..13): the alert at 13..14 resolves at row 15.
    expect(faultEnds(alerts, labels, 0)).toEqual([
      { overlapping: 1, delay: -1 },
      { overlapping: 1, delay: 1 },
    ]);
    // Two alerts inside one fault (rows 1..6): the second resolves at row 6, one row before its end.
    expect(faultEnds(u('0110110000'), u('0111111000'), 0)).toEqual([{ overlapping: 2, delay: -1 }]);
  });

  it('marks a fault no alert touched, and an alert still open at the end', () => {
    expect(faultEnds(u('00000111'), u('01100111'), 0)).toEqual([
      { overlapping: 0, delay: Number.NaN },
      { overlapping: 1, delay: null },
    ]);
    // Rows before `from` (training rows) are not faults.
    expect(faultEnds(u('0000'), u('1100'), 2)).toEqual([]);
  });
});

/** Three SKAB-like files: 400 normal rows to train on, then a level shift on one channel, then normal again. */
function skabFolder(): { folder: string; normal: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-loo-'));
  const folder = join(dir, 'valve');
  mkdirSync(folder);
  for (let i = 0; i < 3; i++) {
    const csv = simulateCsv({ seed: 300 + i, rows: 700, labels: true, faults: [{ kind: 'drift', channel: 4, start: 480, length: 150, magnitude: 40 }] });
    writeFileSync(join(folder, `${i}.csv`), csv.replaceAll(',', ';'));
  }
  const normal = join(dir, 'normal.csv');
  writeFileSync(normal, simulateCsv({ seed: 399, rows: 2400 }));
  return { folder, normal };
}

const smallGrid: LooGrid[] = [
  { fit: [...pcaFitGrid([10], ['moment'], [0]), ...pcaFitGrid([20], ['robust'], [0])], policy: policyGrid([1], [2, 4, 8], [1], [5]) },
];

describe('leaveOneFileOut', () => {
  const { folder, normal } = skabFolder();
  let result: LooReport;

  it('chooses on the other files, scores each file once through the daemon path, and sums the counts', async () => {
    result = await leaveOneFileOut(folder, {
      grid: smallGrid,
      normalFile: normal,
      variants: [
        { name: 'fixed', fixed: { ...FIXED_BEFORE_LOO, window: 10, thresholdQuantile: 1, thresholdMultiplier: 4, resolveAfter: 5 } },
        { name: 'any', allows: () => true },
      ],
    });
    expect(result.files).toBe(3);
    expect(result.candidates).toBe(6);
    const [fixed, any] = result.variants;
    for (const v of [fixed!, any!]) {
      expect(v.folds).toHaveLength(3);
      const l = v.leaveOneOut;
      expect(l.tp + l.fp + l.fn + l.tn).toBe(3 * 300);
      expect(l.tp + l.fn).toBe(3 * 150);
      expect(v.inSample.tp + v.inSample.fn).toBe(3 * 150);
    }
    // A fixed detector is the same in every fold, so its in-sample and leave-one-out figures agree.
    expect(fixed!.leaveOneOut).toEqual(fixed!.inSample);
    expect(any!.leaveOneOut.f1).toBeGreaterThan(0.8);
    // 2400 normal rows: two SKAB-length segments, and the whole file.
    expect(any!.normal).toMatchObject({ rows: 2000, segments: 2 });
    expect(any!.timing.faults).toBe(3);
  }, 60_000);

  it('gives each fold the choice the rule makes on a folder without that file', async () => {
    for (const fold of result.variants[1]!.folds) {
      const others = mkdtempSync(join(tmpdir(), 'sentinel-loo-others-'));
      for (const f of readdirSync(folder)) if (join(folder, f) !== fold.file) copyFileSync(join(folder, f), join(others, f));
      const without = await leaveOneFileOut(others, { grid: smallGrid, variants: [{ name: 'any', allows: () => true }] });
      expect(without.variants[0]!.inSampleChoice).toEqual(fold.choice);
    }
  }, 60_000);
});

describe('leaveOneFileOut, baseline-tests (the search holds the baseline as the replay does)', () => {
  const { folder, normal } = skabFolder();
  const grid: LooGrid = { fit: testsFitGrid([10], [100], [60], [null, 100]), policy: policyGrid([1], [2, 4, 8], [1], [5, 20], { cooldownMs: [0, 60_000] }) };

  it("keeps the replayed in-sample choice within every FAR limit of the rule 'segments-and-file'", async () => {
    const result = await leaveOneFileOut(folder, { grid, normalFile: normal, variants: [{ name: 'tests', allows: () => true, rule: 'segments-and-file' }] });
    expect(result.candidates).toBe(24);
    const [v] = result.variants;
    expect(v!.rule).toBe('segments-and-file');
    // The search's counts are the replay's, so what the rule held to 10 % on the search stays there.
    expect(v!.inSample.far).toBeLessThanOrEqual(10);
    expect(v!.normal!.segmentFalseAlarmRate).toBeLessThanOrEqual(10);
    expect(v!.normal!.falseAlarmRate).toBeLessThanOrEqual(10);
    expect(v!.leaveOneOut.f1).toBeGreaterThan(0.5);
  }, 60_000);
});

describe('sentinel eval-skab --loo', () => {
  it('refuses --normal without --loo and --choose-by-normal without --normal', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    expect(await runSkabCommand(['x', '--normal', 'n.csv'], io)).toBe(2);
    expect(await runSkabCommand(['x', '--loo', '--choose-by-normal'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/--normal and --choose-by-normal go with --loo/);
    expect(err.join('\n')).toMatch(/--choose-by-normal needs --normal CSV/);
  });
});
