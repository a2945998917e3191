/**
 * Issue 12's fleet case: 1,000 single-value sensors at 50 operating points (base 20…69, noise ±1) with
 * single-reading spikes of 10–20 units, through the daemon's own stages (window store with per-stream
 * baselines, batcher, a real ONNX session, decisions). One model, trained on one sensor's normal data.
 */
import { describe, expect, it } from 'vitest';
import { createScorer } from '../../src/model/scorer.js';
import { parseTable } from '../../src/offline/data/table.js';
import { replayStreams, replayScorerOptions, type StreamRow } from '../../src/offline/evaluate/replay.js';
import { simulateFleet } from '../../src/offline/sim/fleet.js';
import { SeededRandom } from '../../src/offline/sim/random.js';
import { trainModel } from '../../src/offline/train/trainer.js';

const STREAMS = 1000;
const ROWS = 600;

function trainingCsv(rows: number, base: number): string {
  const random = new SeededRandom(5);
  const lines = ['ts,value'];
  for (let i = 0; i < rows; i++) lines.push(`${i * 1000},${(base + 2 * random.uniform() - 1).toFixed(4)}`);
  return lines.join('\n') + '\n';
}

function* interleaved(fleet: ReturnType<typeof simulateFleet>): Generator<StreamRow> {
  for (let i = 0; i < ROWS; i++) {
    for (let s = 0; s < STREAMS; s++) yield { streamId: fleet.streamId(s), ts: fleet.ts(i), values: Float32Array.of(fleet.values[s]![i]!) };
  }
}

describe('one model for a fleet at 50 operating points', () => {
  it('raises >= 99 % of the single-reading spikes and nothing else, each alert naming the spike test', async () => {
    // The mechanism under test is one model serving many operating points, so its settings are fixed here:
    // the shipped preset (chosen on SKAB valve1, which has no spikes) raises 51 false alerts on this fleet
    // (spike and noise tests at 3 ×, half-life 200) and its 300 s cooldown would hide a stream's second spike.
    const detector = { family: 'baseline-tests', halfLifeRows: 2000, spikeMultiplier: 8, noiseMultiplier: 5, cooldownMs: 0 } as const;
    const trained = trainModel(parseTable(Buffer.from(trainingCsv(600, 20)), 'one-sensor'), { name: 'fleet', createdAt: '2024-01-01T00:00:00.000Z', detector });
    const m = trained.manifest;
    expect(m.baseline).toBeDefined();
    const quiet = m.baseline!.warmupRows + m.window + 10;
    const fleet = simulateFleet({ streams: STREAMS, rows: ROWS, seed: 12, spikesPerStream: 2, quietRows: quiet, spacing: m.window + m.policy.resolveAfter + 10 });
    const spikeTotal = fleet.spikes.reduce((n, s) => n + s.length, 0);
    expect(spikeTotal).toBe(2000);

    const scorer = await createScorer(trained.onnx, m, 'fleet', replayScorerOptions);
    const alerts = await replayStreams(scorer, interleaved(fleet));
    await scorer.release();

    const spikeAt = new Set<string>();
    for (let s = 0; s < STREAMS; s++) for (const row of fleet.spikes[s]!) spikeAt.add(`${fleet.streamId(s)}@${new Date(fleet.ts(row)).toISOString()}`);
    const raised = alerts.filter((a) => a.type === 'raised');
    const onSpike = raised.filter((a) => spikeAt.has(`${a.streamId}@${a.recordTs}`));
    const falseAlerts = raised.length - onSpike.length;
    expect(falseAlerts).toBe(0);
    expect(onSpike.length / spikeTotal).toBeGreaterThanOrEqual(0.99);
    for (const a of onSpike) expect(a.evidence?.map((e) => e.test)).toContain('spike');
    // Every spike alert resolves: the window slides past it and the baseline was held, not dragged.
    expect(alerts.filter((a) => a.type === 'resolved')).toHaveLength(onSpike.length);
  }, 120_000);
});
