/**
 * Each fault kind the simulator injects, on every channel in turn, detected through the daemon's stages
 * by the default model (baseline-tests): detection rate, delay, and which test the alert names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScorer, type Scorer } from '../../src/model/scorer.js';
import { faultKindReport } from '../../src/offline/evaluate/faults.js';
import { replayScorerOptions } from '../../src/offline/evaluate/replay.js';
import { buildDefaultModel } from '../../src/offline/train/default-model.js';

const RUNS = 20;
const base = { runs: RUNS, rows: 700, start: 400, seed: 900 };

describe('fault kinds on generated pump data (the default model)', () => {
  let scorer: Scorer;
  beforeAll(async () => {
    const trained = buildDefaultModel();
    scorer = await createScorer(trained.onnx, trained.manifest, 'default', replayScorerOptions);
  });
  afterAll(async () => scorer.release());

  it('raises on single-reading spikes at once, naming the spike test', async () => {
    const r = await faultKindReport(scorer, { ...base, kind: 'spike', length: 1, magnitude: 40 });
    expect(r.detected).toBeGreaterThanOrEqual(RUNS - 1);
    expect(r.maxDelayRows).toBe(0);
    expect(r.tests.spike).toBe(r.detected);
    expect(r.falseAlerts).toBeLessThanOrEqual(1);
  }, 60_000);

  it('raises on a stuck channel within one window, naming the stuck test', async () => {
    const r = await faultKindReport(scorer, { ...base, kind: 'stuck', length: 150 });
    expect(r.detected).toBeGreaterThanOrEqual(RUNS - 1);
    expect(r.maxDelayRows).toBeLessThanOrEqual(scorer.manifest.window);
    expect(r.tests.stuck).toBe(r.detected);
    expect(r.falseAlerts).toBeLessThanOrEqual(1);
  }, 60_000);

  it('raises on a noise burst, naming the noise or the spike test', async () => {
    const r = await faultKindReport(scorer, { ...base, kind: 'noise', length: 60, magnitude: 10 });
    expect(r.detected).toBeGreaterThanOrEqual(RUNS - 1);
    expect(r.meanDelayRows).toBeLessThan(10);
    // With the spike test at 3 × (the preset), a burst's first large reading often raises before the
    // roughness over the window does: the alert names spike, and noise in most runs.
    expect((r.tests.noise ?? 0) + (r.tests.spike ?? 0)).toBeGreaterThanOrEqual(r.detected);
    expect(r.tests.noise ?? 0).toBeGreaterThanOrEqual(r.detected / 2);
    expect(r.falseAlerts).toBeLessThanOrEqual(1);
  }, 60_000);
});
