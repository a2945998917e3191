import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { parseTable, type Table } from '../../src/offline/data/table.js';
import { manifestSchema } from '../../src/model/manifest.js';
import { PumpSimulator, type FaultPlan } from '../../src/offline/sim/pump.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { FitError, minimumRows, trainModel } from '../../src/offline/train/trainer.js';

/** These tests hold the window-pca-t2q family (baseline-tests: test/train/baseline-tests.test.ts, test/sim, test/unit/detection-*). */
const PCA = { family: 'window-pca-t2q' } as const;

const normalTable = (rows: number, seed = 11): Table => parseTable(Buffer.from(simulateCsv({ seed, rows })), `sim-${seed}`);

/** Consecutive windows [n, window, channels] over simulated rows, starting at the first full window. */
function simulatedWindows(window: number, rows: number, faults: FaultPlan[] = []): { data: Float32Array; batch: number; faulty: boolean[] } {
  const sim = new PumpSimulator({ seed: 99, faults });
  const readings = Array.from({ length: rows }, () => sim.next());
  const c = sim.channels.length;
  const batch = rows - window + 1;
  const data = new Float32Array(batch * window * c);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < window; t++) for (let j = 0; j < c; j++) data[(b * window + t) * c + j] = readings[b + t]!.values[j]!;
  }
  return { data, batch, faulty: readings.slice(window - 1).map((r) => r.fault !== null) };
}

describe('trainModel', () => {
  const trained = trainModel(normalTable(2000), { detector: PCA, window: 16, createdAt: '2024-01-01T00:00:00.000Z' });

  it('writes a manifest that validates and states the contract', () => {
    const m = manifestSchema.parse(trained.manifest);
    expect(m.channels).toEqual(['vibration', 'current', 'pressure', 'temperature', 'flow']);
    expect(m.window).toBe(16);
    expect(m.normalization).toEqual({ kind: 'graph' });
    expect(m.training.rows).toBe(2000);
    expect(m.training.from).toBe('2024-01-01T00:00:00.000Z');
    expect(m.calibration.fitRows).toBe(1500);
    expect(m.policy.clearThreshold).toBeLessThanOrEqual(m.policy.raiseThreshold);
    // No held-out normal window may reach the threshold: it sits above the held-out tail.
    expect(m.calibration.heldOutFalseAlarmRate).toBe(0);
  });

  it('gives scores whose per-channel contributions sum to the score', () => {
    const { data, batch } = simulatedWindows(16, 200);
    const { scores, contributions } = trained.scoreWindows(data, batch);
    for (let b = 0; b < batch; b++) {
      let sum = 0;
      for (let j = 0; j < 5; j++) sum += contributions[b * 5 + j]!;
      expect(sum).toBeCloseTo(scores[b]!, 9);
    }
  });

  it('scores a drift well above normal windows and blames the drifting channel', () => {
    const { data, batch, faulty } = simulatedWindows(16, 1200, [{ kind: 'drift', channel: 2, start: 600, length: 400 }]);
    const { scores, contributions } = trained.scoreWindows(data, batch);
    const raise = trained.manifest.policy.raiseThreshold;
    const late = 1000 - 16;
    expect(scores[late]!).toBeGreaterThan(raise);
    const blame = Array.from(contributions.subarray(late * 5, late * 5 + 5));
    expect(blame.indexOf(Math.max(...blame))).toBe(2);
    const normalAbove = scores.filter((s, i) => !faulty[i] && i < 580 && s >= raise).length;
    expect(normalAbove).toBe(0);
  });

  it('exports an ONNX graph that onnxruntime scores like the trainer, to 1e-4', async () => {
    const session = await ort.InferenceSession.create(trained.onnx, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const { data, batch } = simulatedWindows(16, 900, [
      { kind: 'spike', channel: 0, start: 200, length: 5 },
      { kind: 'drift', channel: 4, start: 400, length: 200 },
      { kind: 'noise', channel: 1, start: 700, length: 100 },
    ]);
    const m = trained.manifest;
    expect(session.inputNames).toEqual([m.input.name]);
    const out = await session.run({ [m.input.name]: new ort.Tensor('float32', data, [batch, 16, 5]) });
    const score = out[m.outputs.score]!;
    const contributions = out[m.outputs.contributions!]!;
    expect(score.dims).toEqual([batch]);
    expect(contributions.dims).toEqual([batch, 5]);
    const ref = trained.scoreWindows(data, batch);
    const close = (got: ArrayLike<number>, want: Float64Array) => {
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want[i]!)));
    };
    close(score.data as Float32Array, ref.scores);
    close(contributions.data as Float32Array, ref.contributions);
  });

  it('is deterministic: the same table gives the same bytes', () => {
    const again = trainModel(normalTable(2000), { detector: PCA, window: 16, createdAt: '2024-01-01T00:00:00.000Z' });
    expect(Buffer.from(again.onnx).equals(Buffer.from(trained.onnx))).toBe(true);
    expect(again.manifest).toEqual(trained.manifest);
  });

  it('trains a 400 × 8 table in well under 5 s', () => {
    const c = 8;
    const header = Array.from({ length: c }, (_, j) => `s${j}`).join(',');
    const sim = new PumpSimulator({ seed: 3 });
    const lines = Array.from({ length: 400 }, () => {
      const v = sim.next().values;
      return Array.from({ length: c }, (_, j) => (v[j % 5]! + j * 0.01 * v[(j + 1) % 5]!).toFixed(5)).join(',');
    });
    const table = parseTable(Buffer.from([header, ...lines].join('\n')), 'eight');
    const started = performance.now();
    trainModel(table, { detector: PCA });
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('trainModel refuses unusable data', () => {
  it('names a constant channel', () => {
    const csv = simulateCsv({ seed: 1, rows: 300 }).replace(/,([-\d.]+)\n/g, ',30\n');
    const table = parseTable(Buffer.from(csv), 'flat');
    expect(() => trainModel(table, { detector: PCA })).toThrow(FitError);
    expect(() => trainModel(table, { detector: PCA })).toThrow(/channel "flow" is constant/);
  });

  it('says how many rows the window needs', () => {
    const need = minimumRows(20, 5);
    expect(() => trainModel(normalTable(need - 1), { detector: PCA })).toThrow(new RegExp(`has ${need - 1} rows; window 20 with 5 channels needs at least ${need}`));
    expect(() => trainModel(normalTable(need), { detector: PCA })).not.toThrow();
  });

  it('names an unknown channel and lists the ones there are', () => {
    expect(() => trainModel(normalTable(300), { detector: PCA, channels: ['flow', 'rpm'] })).toThrow(/no channel "rpm"; it has vibration, current/);
  });

  it('refuses a window that is not a whole number of rows', () => {
    expect(() => trainModel(normalTable(300), { detector: PCA, window: 0 })).toThrow(/window 0/);
    expect(() => trainModel(normalTable(300), { detector: PCA, window: 2.5 })).toThrow(/window 2.5/);
  });

  it('trains on a chosen subset of channels in the given order', () => {
    const m = trainModel(normalTable(400), { detector: PCA, channels: ['flow', 'current'] }).manifest;
    expect(m.channels).toEqual(['flow', 'current']);
  });
});

describe('trainModel hyperparameters', () => {
  const table = normalTable(1200, 21);

  it('robust scaling centres on the median of the window means and keeps the graph contract', () => {
    const moment = trainModel(table, { detector: PCA, window: 10 });
    const robust = trainModel(table, { window: 10, detector: { ...PCA, scaling: 'robust' } });
    expect(robust.manifest.calibration.scaling).toBe('robust');
    expect(Array.from(robust.model.center)).not.toEqual(Array.from(moment.model.center));
    const { data, batch } = simulatedWindows(10, 200);
    const { scores, contributions } = robust.scoreWindows(data, batch);
    for (let b = 0; b < batch; b++) {
      let sum = 0;
      for (let j = 0; j < 5; j++) sum += contributions[b * 5 + j]!;
      expect(sum).toBeCloseTo(scores[b]!, 9);
    }
  });

  it('a drift allowance weighs a channel that trends while training less', () => {
    // Temperature follows the slow demand cycle, so it trends over the first rows of a recording.
    const plain = trainModel(normalTable(600, 5), { detector: PCA, window: 10 });
    const allowed = trainModel(normalTable(600, 5), { window: 10, detector: { ...PCA, driftHorizon: 600 } });
    const t = 3;
    expect(allowed.model.scale[t]!).toBeLessThan(plain.model.scale[t]!);
    expect(allowed.manifest.calibration.driftHorizon).toBe(600);
  });

  it('sets the policy from the held-out quantile, the multiplier, the clear ratio and the resolve count', () => {
    const m = trainModel(table, { window: 10, detector: { ...PCA, thresholdQuantile: 1, thresholdMultiplier: 3, clearRatio: 0.5, resolveAfter: 7 } }).manifest;
    expect(m.policy.raiseThreshold).toBeCloseTo(3 * Number(m.calibration.heldOutScoreMax), 9);
    expect(m.policy.clearThreshold).toBeCloseTo(0.5 * m.policy.raiseThreshold, 9);
    expect(m.policy.resolveAfter).toBe(7);
  });
});
