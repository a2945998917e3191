import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { alertSchema, SATURATED, type Alert } from '../../src/alert/alert.js';
import { WindowBatch } from '../../src/batch/micro-batcher.js';
import { DecisionStage } from '../../src/decide/decision-stage.js';
import { manifestSchema, type Manifest } from '../../src/model/manifest.js';

const base = manifestSchema.parse(JSON.parse(readFileSync('models/default.json', 'utf8')));
const policy = { raiseThreshold: 10, clearThreshold: 5, raiseAfter: 1, resolveAfter: 1, cooldownMs: 0 };
/** Two versions of one model whose thresholds disagree about a score of 50. */
const oldModel: Manifest = { ...base, version: `sha256:${'a'.repeat(64)}`, policy };
const newModel: Manifest = { ...base, version: `sha256:${'b'.repeat(64)}`, policy: { ...policy, raiseThreshold: 100, clearThreshold: 80 } };
const CHANNELS = base.channels.length;

function batchOf(entries: Array<[string, number]>): WindowBatch {
  const batch = new WindowBatch(entries.length, base.window * CHANNELS);
  entries.forEach(([streamId, ts], i) => {
    batch.streamIds[i] = streamId;
    batch.ts[i] = ts;
  });
  batch.size = entries.length;
  return batch;
}

function stage(initial: Manifest): { stage: DecisionStage; alerts: Alert[]; saturated: () => number; errors: unknown[] } {
  const alerts: Alert[] = [];
  const errors: unknown[] = [];
  let saturated = 0;
  const s = new DecisionStage(initial, { nodeName: 'n1', topChannels: 2 }, { onAlert: (a) => alerts.push(a), onSaturated: () => saturated++, onError: (e) => errors.push(e) });
  return { stage: s, alerts, saturated: () => saturated, errors };
}

const scores = (...values: number[]): { scores: Float32Array; contributions: Float32Array | null } => ({ scores: Float32Array.from(values), contributions: null });

describe('decision stage', () => {
  it('judges a batch by the policy of the model that scored it, not the one serving now (a swap mid-flight)', () => {
    // The daemon has already swapped to newModel; a batch the old model scored comes back afterwards.
    const { stage: s, alerts } = stage(newModel);
    s.decideBatch(batchOf([['pump-1', 1_000]]), scores(50), oldModel);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ type: 'raised', score: 50, thresholds: { raise: 10, clear: 5 }, model: { version: oldModel.version } });
    // The next batch, scored by the new model: 50 is under its clear threshold, so the alert resolves by its policy.
    s.decideBatch(batchOf([['pump-1', 2_000]]), scores(50), newModel);
    expect(alerts.map((a) => a.type)).toEqual(['raised', 'resolved']);
    expect(alerts[1]).toMatchObject({ reason: 'score', peakScore: 50, thresholds: { raise: 100, clear: 80 }, model: { version: newModel.version } });
    // And a score of 50 from the new model never raises.
    s.decideBatch(batchOf([['pump-2', 3_000]]), scores(50), newModel);
    expect(alerts).toHaveLength(2);
    expect(s.activeAlerts).toBe(0);
  });

  it('reports saturated scores as the largest float32 and lists top channels by contribution', () => {
    const { stage: s, alerts, saturated } = stage(oldModel);
    const contributions = new Float32Array(2 * CHANNELS);
    contributions.set([1, 9, Number.POSITIVE_INFINITY, 0, 2], CHANNELS);
    s.decideBatch(batchOf([['quiet', 1], ['loud', 1]]), { scores: Float32Array.from([1, Number.POSITIVE_INFINITY]), contributions }, oldModel);
    expect(saturated()).toBe(1);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.score).toBe(SATURATED);
    expect(alerts[0]?.topChannels).toEqual([
      { channel: base.channels[2], contribution: Math.round(SATURATED * 1e6) / 1e6 },
      { channel: base.channels[1], contribution: 9 },
    ]);
    expect(alertSchema.safeParse(alerts[0]).success).toBe(true);
  });

  it('closes an open alert on a silent stream with reason stale (or evicted), once; a quiet stream gives nothing', () => {
    const { stage: s, alerts } = stage(oldModel);
    s.decideBatch(batchOf([['a', 1_000], ['b', 1_000]]), scores(40, 30), oldModel);
    s.decideBatch(batchOf([['a', 2_000]]), scores(45), oldModel);
    s.closeSilent('a', 'stale', 2_000, newModel);
    s.closeSilent('a', 'stale', 2_000, newModel);
    s.closeSilent('b', 'evicted', 1_000, newModel);
    s.closeSilent('never-raised', 'evicted', 1_000, newModel);
    expect(alerts.map((a) => `${a.type}:${a.streamId}:${a.reason ?? ''}`)).toEqual(['raised:a:', 'raised:b:', 'resolved:a:stale', 'resolved:b:evicted']);
    expect(alerts[2]).toMatchObject({ score: 45, peakScore: 45, topChannels: [], model: { version: newModel.version } });
    expect(alerts[2]?.eventId).not.toBe(alerts[3]?.eventId);
    expect(s.activeAlerts).toBe(0);
  });

  it('a window that trips a bug costs only its own decision', () => {
    const delivered: string[] = [];
    const errors: unknown[] = [];
    const s = new DecisionStage(oldModel, { nodeName: 'n1', topChannels: 2 }, {
      onAlert: (a) => {
        // a bug downstream, for one stream only
        if (a.streamId === 'bad') throw new Error('boom');
        delivered.push(a.streamId);
      },
      onSaturated: () => {},
      onError: (e) => errors.push(e),
    });
    s.decideBatch(batchOf([['ok-1', 1], ['bad', 1], ['ok-2', 1]]), scores(50, 50, 50), oldModel);
    expect(delivered).toEqual(['ok-1', 'ok-2']);
    expect(errors).toEqual([new Error('boom')]);
  });
});
