/**
 * The leave-one-file-out search's simulated hold against the daemon's stages: every policy's decisions,
 * row by row, must be the ones the window store, a real ONNX session and the decision stage make when
 * each window is decided before the stream's next row (an open alert holding the baseline).
 */
import { describe, expect, it } from 'vitest';
import { createScorer } from '../../src/model/scorer.js';
import { channelColumn, parseTable, type Table } from '../../src/offline/data/table.js';
import { replayScorerOptions } from '../../src/offline/evaluate/replay.js';
import { replayTable } from '../../src/offline/evaluate/replay.js';
import { headOf } from '../../src/offline/evaluate/skab.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { fitTests } from '../../src/offline/train/baseline-tests.js';
import { BASELINE_TESTS_DETECTOR, type DetectorOptions, type PolicyOptions } from '../../src/offline/train/detector.js';
import { searchWithHold, type RecordedStream } from '../../src/offline/train/hold-search.js';
import { trainModel } from '../../src/offline/train/trainer.js';

const TRAIN_ROWS = 400;

/** 400 normal rows, then two level shifts (the second one long), with labels. */
function generated(seed: number): Table {
  const csv = simulateCsv({
    seed,
    rows: 900,
    labels: true,
    faults: [
      { kind: 'drift', channel: 3, start: 470, length: 120, magnitude: 30 },
      { kind: 'noise', channel: 1, start: 700, length: 60, magnitude: 12 },
    ],
  });
  return parseTable(Buffer.from(csv), `generated-${seed}`);
}

const OFF = Number.POSITIVE_INFINITY;
/** A short half-life, so that holding the baseline or not changes what is decided. */
const fit = { ...BASELINE_TESTS_DETECTOR, window: 10, warmupRows: 100, halfLifeRows: 60, maxHoldRows: null };
const policies: PolicyOptions[] = [
  { ...fit, thresholdMultiplier: 2, spikeMultiplier: OFF, noiseMultiplier: OFF, stuckMultiplier: OFF, clearRatio: 1, resolveAfter: 1, raiseAfter: 1, cooldownMs: 0 },
  { ...fit, thresholdMultiplier: 3, spikeMultiplier: 5, noiseMultiplier: 3, stuckMultiplier: OFF, clearRatio: 0.5, resolveAfter: 10, raiseAfter: 1, cooldownMs: 0 },
  { ...fit, thresholdMultiplier: 2, spikeMultiplier: OFF, noiseMultiplier: 3, stuckMultiplier: OFF, clearRatio: 1, resolveAfter: 5, raiseAfter: 3, cooldownMs: 30_000 },
  { ...fit, thresholdMultiplier: 4, spikeMultiplier: OFF, noiseMultiplier: 5, stuckMultiplier: OFF, clearRatio: 0.5, resolveAfter: 20, raiseAfter: 1, cooldownMs: 0 },
];

function stream(table: Table): RecordedStream {
  return { columns: table.channels.map((name) => channelColumn(table, name)), rows: table.rows, timestamps: table.timestamps, labels: table.labels['anomaly']! };
}

function simulate(table: Table, detector: DetectorOptions, list: PolicyOptions[]): Map<number, Uint8Array> {
  const s = stream(table);
  const fitted = fitTests(s.columns as Float64Array[], table.channels, TRAIN_ROWS, detector);
  return searchWithHold(fitted, s, detector.window, list, { from: TRAIN_ROWS, record: list.map((_, i) => i) }).recorded;
}

async function replayed(table: Table, detector: DetectorOptions): Promise<Uint8Array> {
  const { window, ...rest } = detector;
  const trained = trainModel(headOf(table, TRAIN_ROWS), { window, detector: rest });
  const scorer = await createScorer(trained.onnx, trained.manifest, 'hold-search', replayScorerOptions);
  try {
    return (await replayTable(scorer, table)).anomaly;
  } finally {
    await scorer.release();
  }
}

const differing = (a: Uint8Array, b: Uint8Array): number => a.reduce((n, v, i) => n + (v === b[i] ? 0 : 1), 0);

describe('searchWithHold (the search simulates the daemon: an open alert holds the baseline)', () => {
  const tables = [generated(41), generated(42)];

  it("makes the replay's decisions on every row, for every policy, searched together", async () => {
    let alerts = 0;
    for (const table of tables) {
      const together = simulate(table, fit, policies);
      for (let p = 0; p < policies.length; p++) {
        const detector = { ...fit, ...policies[p]! };
        const replay = await replayed(table, detector);
        expect(differing(together.get(p)!, replay)).toBe(0);
        // Searched alone or with the others: the same (policies share a baseline only while they agree).
        expect(differing(simulate(table, detector, [policies[p]!]).get(0)!, replay)).toBe(0);
        alerts += replay.reduce((n, v) => n + v, 0);
      }
    }
    expect(alerts).toBeGreaterThan(0);
  }, 20_000);

  it('differs from a baseline that keeps following during alerts (the hold matters on this data)', () => {
    let changed = 0;
    for (const table of tables) {
      const held = simulate(table, fit, policies);
      const following = simulate(table, { ...fit, maxHoldRows: 0 }, policies);
      for (let p = 0; p < policies.length; p++) changed += differing(held.get(p)!, following.get(p)!);
    }
    expect(changed).toBeGreaterThan(0);
  });

  it('counts TP / FP / FN / TN after the training rows from the decisions', () => {
    const table = tables[0]!;
    const s = stream(table);
    const fitted = fitTests(s.columns as Float64Array[], table.channels, TRAIN_ROWS, fit);
    const result = searchWithHold(fitted, s, fit.window, policies, { from: TRAIN_ROWS, record: [1] });
    const decided = result.recorded.get(1)!;
    const expected = [0, 0, 0, 0];
    for (let i = TRAIN_ROWS; i < table.rows; i++) expected[(decided[i] ? 0 : 2) + (s.labels[i] ? 0 : 1)]!++;
    expect(Array.from(result.counts.subarray(4, 8))).toEqual(expected);
  });
});
