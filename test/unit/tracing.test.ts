/**
 * The tracing stage against an in-process OTLP/HTTP receiver: the span tree of a batch (batch →
 * inference, decide → alert publish), its timing, the alert's eventId and outcome, sampling, a
 * failing or absent collector (counted, never thrown), and a bounded stop.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tracingConfigSchema, type TracingConfig } from '../../src/observe/tracing-config.js';
import { Tracing, type BatchInfo } from '../../src/observe/tracing.js';
import { sampleAlert } from '../support/alert.js';
import { OtlpReceiver } from '../support/otlp-receiver.js';

let receiver: OtlpReceiver;
beforeEach(async () => {
  receiver = await new OtlpReceiver().start();
});
afterEach(async () => {
  await receiver.stop();
});

interface Tally {
  ended: number;
  exported: number;
  failed: number;
  errors: string[];
}

function tracingFor(overrides: Partial<TracingConfig>, endpoint = receiver.url): { tracing: Tracing; tally: Tally } {
  const tally: Tally = { ended: 0, exported: 0, failed: 0, errors: [] };
  const config = tracingConfigSchema.parse({ enabled: true, endpoint, exportIntervalMs: 100, exportTimeoutMs: 2_000, ...overrides });
  const tracing = new Tracing(config, { nodeName: 'edge-7', version: '9.9.9' }, {
    onEnded: (n) => (tally.ended += n),
    onExported: (n, ok, error) => {
      if (ok) tally.exported += n;
      else {
        tally.failed += n;
        tally.errors.push(error?.message ?? '');
      }
    },
  });
  return { tracing, tally };
}

function info(overrides: Partial<BatchInfo> = {}): BatchInfo {
  const now = performance.now();
  return {
    model: 'pump',
    manifest: { name: 'pump-pca', version: 'sha256:abc' },
    provider: 'cpu',
    windows: 12,
    oldestReceivedAt: now - 40,
    inferenceEndedAt: now,
    inferenceSeconds: 0.015,
    shadow: false,
    ...overrides,
  };
}

const stopNow = (tracing: Tracing) => tracing.stop(AbortSignal.timeout(5_000));
const ns = (ms: number) => BigInt(Math.round(ms * 1e6));

describe('Tracing', () => {
  it('exports a batch as batch → inference, decide → alert publish, with the eventId and the PUBACK outcome', async () => {
    const { tracing, tally } = tracingFor({});
    await tracing.start();
    const raised = sampleAlert(1_700_000_000_000, 'plant/pump-3');
    const resolved = sampleAlert(1_700_000_001_000, 'plant/pump-4', { type: 'resolved', reason: 'score' });
    const batch = info();
    const wallAtEnd = Date.now();
    const traced = tracing.batch(batch);
    expect(traced).not.toBeNull();
    traced?.decide(() => {
      tracing.alertSent(raised);
      tracing.alertSent(resolved);
    });
    tracing.alertSettled(raised.eventId, 'acknowledged');
    tracing.alertSettled(resolved.eventId, 'not_acknowledged', new Error('connection closed'));
    await stopNow(tracing);

    expect(receiver.spans.map((s) => s.name).sort()).toEqual(['sentinel.alert.publish', 'sentinel.alert.publish', 'sentinel.batch', 'sentinel.decide', 'sentinel.inference']);
    expect(receiver.requests.every((r) => r.contentType.startsWith('application/json'))).toBe(true);
    const [root] = receiver.named('sentinel.batch');
    const [inference] = receiver.named('sentinel.inference');
    const [decide] = receiver.named('sentinel.decide');
    if (!root || !inference || !decide) throw new Error('missing spans');
    expect(root.parentSpanId).toBe('');
    expect(new Set(receiver.spans.map((s) => s.traceId)).size).toBe(1);
    expect(inference.parentSpanId).toBe(root.spanId);
    expect(decide.parentSpanId).toBe(root.spanId);
    expect(root.attributes).toMatchObject({
      'sentinel.model': 'pump',
      'sentinel.model.name': 'pump-pca',
      'sentinel.model.version': 'sha256:abc',
      'sentinel.provider': 'cpu',
      'sentinel.batch.windows': 12,
      'sentinel.shadow': false,
      'sentinel.alerts.raised': 1,
      'sentinel.alerts.resolved': 1,
    });
    expect(root.resource).toMatchObject({ 'service.name': 'sentinel', 'service.version': '9.9.9', 'service.instance.id': 'edge-7' });
    expect(root.scope).toBe('sentinel');
    // The batch starts at its oldest reading (40 ms before the run ended), the model run 15 ms before
    // (the SDK anchors each span to Date.now(), whose millisecond steps add up to ~1 ms between spans).
    expect(Math.abs(Number(inference.endNs - inference.startNs) - 15e6)).toBeLessThan(2e6);
    expect(Math.abs(Number(inference.startNs - root.startNs) - 25e6)).toBeLessThan(2e6);
    // In order, give or take the SDK's per-span anchoring (each span converts its times on its own).
    const slack = 2_000_000n;
    expect(decide.startNs + slack >= inference.endNs).toBe(true);
    expect(root.endNs + slack >= decide.endNs).toBe(true);
    // Anchored to the wall clock (within a second of when the batch ended).
    expect(Math.abs(Number(inference.endNs - ns(wallAtEnd)))).toBeLessThan(1e9);

    const publishes = receiver.named('sentinel.alert.publish');
    const byEvent = new Map(publishes.map((s) => [s.attributes['sentinel.alert.event_id'], s]));
    const up = byEvent.get(raised.eventId);
    const down = byEvent.get(resolved.eventId);
    expect(up?.parentSpanId).toBe(decide.spanId);
    expect(up?.kind).toBe(4); // PRODUCER
    expect(up?.attributes).toMatchObject({ 'sentinel.alert.type': 'raised', 'sentinel.stream': 'plant/pump-3', 'sentinel.alert.outcome': 'acknowledged' });
    expect(up?.status.code).toBe(0);
    expect(down?.attributes).toMatchObject({ 'sentinel.alert.type': 'resolved', 'sentinel.alert.reason': 'score', 'sentinel.alert.outcome': 'not_acknowledged' });
    expect(down?.status).toEqual({ code: 2, message: 'connection closed' });
    expect(tally).toEqual({ ended: 5, exported: 5, failed: 0, errors: [] });
  });

  it('traces no batch at ratio 0, yet every alert (as its own trace); a shadow run has no decide span', async () => {
    const { tracing } = tracingFor({ batchSampleRatio: 0 });
    expect(tracing.batch(info())).toBeNull();
    const alert = sampleAlert(5, 'sweep/closed', { type: 'resolved', reason: 'stale' });
    tracing.alertSent(alert);
    tracing.alertSettled(alert.eventId, 'acknowledged');
    const { tracing: all } = tracingFor({});
    all.batch(info({ shadow: true }))?.end();
    await stopNow(tracing);
    await stopNow(all);
    const [publish] = receiver.named('sentinel.alert.publish');
    expect(publish?.parentSpanId).toBe('');
    expect(publish?.attributes['sentinel.alert.reason']).toBe('stale');
    expect(receiver.named('sentinel.batch').map((s) => s.attributes['sentinel.shadow'])).toEqual([true]);
    expect(receiver.named('sentinel.decide')).toHaveLength(0);
    expect(receiver.named('sentinel.inference')).toHaveLength(1);
  });

  it('samples about the configured share of batches', async () => {
    const { tracing } = tracingFor({ batchSampleRatio: 0.25 });
    let traced = 0;
    for (let i = 0; i < 4_000; i++) {
      const t = tracing.batch(info());
      if (t !== null) {
        traced++;
        t.end();
      }
    }
    await stopNow(tracing);
    // Binomial(4000, 0.25): mean 1000, sd 27; ±6 sd.
    expect(traced).toBeGreaterThan(840);
    expect(traced).toBeLessThan(1_160);
  });

  it('counts a failed export and an unreachable collector, and stops within its deadline', async () => {
    receiver.failWith = 400;
    const { tracing, tally } = tracingFor({});
    tracing.batch(info())?.end();
    await stopNow(tracing);
    expect(receiver.requests.length).toBeGreaterThan(0);
    expect(tally.failed).toBe(2);
    expect(tally.exported).toBe(0);

    // Nothing listens on port 9 (discard) on this host: the export fails, the stop still returns in time.
    const { tracing: lost, tally: lostTally } = tracingFor({ exportTimeoutMs: 500 }, 'http://127.0.0.1:9/v1/traces');
    const alert = sampleAlert(7);
    lost.alertSent(alert);
    const started = Date.now();
    await lost.stop(AbortSignal.timeout(3_000));
    expect(Date.now() - started).toBeLessThan(3_500);
    expect(lostTally.ended).toBe(1);
    expect(lostTally.exported).toBe(0);
    expect(lostTally.failed).toBe(1);
    expect(lostTally.errors[0]).toMatch(/ECONNREFUSED/);
  });

  it('ends alert spans still waiting for a PUBACK on stop, as shutdown, and bounds them while running', async () => {
    const { tracing, tally } = tracingFor({ maxQueueSize: 65_536 });
    for (let i = 0; i < 4_100; i++) tracing.alertSent(sampleAlert(i));
    // 4,096 wait at most: the 4 oldest were ended as untracked.
    expect(tally.ended).toBe(4);
    await stopNow(tracing);
    const outcomes = new Map<string, number>();
    for (const s of receiver.named('sentinel.alert.publish')) {
      const outcome = String(s.attributes['sentinel.alert.outcome']);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    expect(Object.fromEntries(outcomes)).toEqual({ untracked: 4, shutdown: 4_096 });
    // After stop nothing more is traced, and a late PUBACK is ignored.
    expect(tracing.batch(info())).toBeNull();
    tracing.alertSettled(sampleAlert(1).eventId, 'acknowledged');
    tracing.alertSent(sampleAlert(99_999));
    expect(tally.ended).toBe(4_100);
  });

  it('cuts attribute values from outside (stream ids) to 256 characters', async () => {
    const { tracing } = tracingFor({});
    const alert = sampleAlert(3, `s/${'x'.repeat(5_000)}`);
    tracing.alertSent(alert);
    tracing.alertSettled(alert.eventId, 'acknowledged');
    await stopNow(tracing);
    expect(String(receiver.named('sentinel.alert.publish')[0]?.attributes['sentinel.stream'])).toHaveLength(256);
  });
});
