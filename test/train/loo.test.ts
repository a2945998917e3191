import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSkabCommand } from '../../src/cli/eval-skab.js';
import { FIXED_BEFORE_LOO, choose, leaveOneFileOut, pcaFitGrid, policyGrid, type LooGrid, type LooReport } from '../../src/offline/evaluate/loo.js';
import type { Confusion } from '../../src/offline/evaluate/replay.js';
import { simulateCsv } from '../../src/offline/sim/record.js';

const c = (tp: number, fp: number, fn: number, tn: number): Confusion => ({ tp, fp, fn, tn });

describe('choose (the leave-one-file-out selection rule)', () => {
  // Two files; candidate 0 is quiet and blind, 1 sees everything but alarms too often on file 1, 2 is good.
  const counts = [
    [c(0, 0, 10, 90), c(0, 0, 10, 90)],
    [c(10, 0, 0, 90), c(10, 40, 0, 50)],
    [c(8, 2, 2, 88), c(8, 2, 2, 88)],
  ];
  const all = [true, true, true];

  it('takes the highest pooled F1 among the candidates under the FAR limit', () => {
    expect(choose(counts, all, [0, 1], [], 10)).toBe(2);
    // File 1 alone: candidate 1 alarms on 44 % of its normal rows.
    expect(choose(counts, all, [1], [], 10)).toBe(2);
    // File 0 alone: candidate 1 is perfect there.
    expect(choose(counts, all, [0], [], 10)).toBe(1);
  });

  it('counts the false alarms of normal-only files in the FAR, never in the F1', () => {
    const withNormal = counts.map((row, k) => [...row, k === 2 ? c(0, 60, 0, 40) : c(0, 0, 0, 100)]);
    expect(choose(withNormal, all, [0, 1], [], 10)).toBe(2);
    // Candidate 2's 60 false alarms on the normal file push it over the limit: 0 is the only one left.
    expect(choose(withNormal, all, [0, 1], [2], 10)).toBe(0);
  });

  it('falls back to the lowest FAR when no candidate is under the limit, and keeps to the allowed ones', () => {
    expect(choose(counts, all, [0, 1], [], 0)).toBe(0);
    expect(choose(counts, [false, false, true], [0, 1], [], 0)).toBe(2);
    expect(() => choose(counts, [false, false, false], [0], [], 10)).toThrow(/no candidate/);
  });

  it('breaks ties by grid order', () => {
    expect(choose([counts[2]!, counts[2]!], [true, true], [0, 1], [], 10)).toBe(0);
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
