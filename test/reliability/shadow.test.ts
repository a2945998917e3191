/**
 * Shadow (candidate) models through a real Mosquitto: a candidate dropped beside the live model scores
 * the same windows and decides, but its alerts are never published; promotion under load (the file
 * moves `sentinel promote` makes) swaps it in with no window dropped or scored twice; rollback brings
 * the previous model back.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { manifestPathFor } from '../../src/model/manifest.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { promote, rollback } from '../../src/route/promotion.js';
import { candidatePathFor, previousPathFor } from '../../src/route/route.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCapturedDaemon, type CapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { scoredWindows } from '../support/model.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

let broker: MosquittoProcess;
let publisher: MqttClient;
let work: string;
let modelA: ModelFiles;
let modelB: ModelFiles;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `shadow-pub-${process.pid}`, reconnectPeriod: 0 });
  work = mkdtempSync(join(tmpdir(), 'sentinel-shadow-'));
  modelA = trainPumpModel(101, { name: 'pump-a' });
  modelB = trainPumpModel(202, { name: 'pump-b' });
}, 60_000);
afterAll(async () => {
  await publisher?.endAsync();
  await broker?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Streams of pump rows; stream 0 carries a level-shift fault both models see. */
class FaultyStreams {
  private readonly sims: PumpSimulator[];
  rows = 0;
  constructor(
    private readonly topics: string[],
    fault: { start: number; length: number },
  ) {
    this.sims = topics.map(
      (_, i) => new PumpSimulator({ seed: 31 + i, faults: i === 0 ? [{ kind: 'drift', channel: 1, start: fault.start, length: fault.length }] : [] }),
    );
  }
  async step(): Promise<void> {
    await Promise.all(
      this.sims.map((sim, i) => {
        const r = sim.next();
        const values = Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]]));
        return publisher.publishAsync(this.topics[i] as string, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
      }),
    );
    this.rows++;
  }
  /** Every full window of every stream after its baseline's warm-up, once (both models keep the same rule). */
  expectedWindows(): number {
    return this.topics.length * scoredWindows(modelA.manifest, this.rows);
  }
}

async function shadowDaemon(name: string, modelPath: string): Promise<{ daemon: CapturedDaemon; topics: string[]; alerts: Alert[]; done(): Promise<void> }> {
  const prefix = uniquePrefix(name);
  const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `${name}-watch-${process.pid}`, reconnectPeriod: 0 });
  const alerts: Alert[] = [];
  watcher.on('message', (_topic, payload) => alerts.push(alertSchema.parse(JSON.parse(payload.toString()))));
  await watcher.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
  const daemon = await startCapturedDaemon(name, {
    broker: { url: broker.url, protocolVersion: 5 },
    subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
    alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
    model: { path: modelPath, watch: true },
    batch: { maxSize: 64, maxDelayMs: 2 },
    log: { level: 'info', rejectLogIntervalMs: 0 },
  });
  await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
  const topics = Array.from({ length: 3 }, (_, i) => `${prefix}/sensors/pump-${i}/telemetry`);
  return { daemon, topics, alerts, done: () => watcher.endAsync() };
}

const served = (d: CapturedDaemon) => (d.daemon.readiness().detail.model as { version: string } | null)?.version;
const shadowVersion = async (d: CapturedDaemon) => {
  const m = /sentinel_shadow_model_info\{[^}]*version="([^"]+)"[^}]*\} 1/.exec(await d.metrics());
  return m?.[1] ?? null;
};

async function settle(daemon: CapturedDaemon, windows: number): Promise<string> {
  await daemon.waitForMetric('sentinel_windows_scored_total', windows, 20_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return daemon.metrics();
}

describe('shadow models through Mosquitto', () => {
  it('a candidate scores the same windows in shadow: its decisions are counted and compared, never published', async () => {
    const path = join(mkdtempSync(join(work, 'models-')), 'pump.onnx');
    placeModel(path, modelA);
    placeModel(candidatePathFor(path), modelB);
    const { daemon, topics, alerts, done } = await shadowDaemon('shadow-compare', path);
    try {
      await waitFor(async () => (await shadowVersion(daemon)) === modelB.manifest.version, 10_000, 'candidate in shadow');
      // The fault comes after each stream's baseline warm-up (its first warmupRows readings are not scored).
      const warmup = modelA.manifest.baseline?.warmupRows ?? 0;
      const stream = new FaultyStreams(topics, { start: warmup + 120, length: 80 });
      for (let i = 0; i < warmup + 320; i++) await stream.step();
      const text = await settle(daemon, stream.expectedWindows());
      const windows = metricValue(text, 'sentinel_windows_scored_total');
      expect(windows).toBe(stream.expectedWindows());
      // Every window the live model scored, the shadow scored too, and each is compared once.
      await daemon.waitForMetric('sentinel_shadow_windows_scored_total', windows, 10_000);
      const after = await daemon.metrics();
      const compared = ['agree', 'live_only', 'shadow_only'].map((outcome) => metricValue(after, 'sentinel_shadow_scores_total', { outcome }));
      const decided = ['agree', 'live_only', 'shadow_only'].map((outcome) => metricValue(after, 'sentinel_shadow_decisions_total', { outcome }));
      expect(compared.reduce((a, b) => a + b)).toBe(windows);
      expect(decided.reduce((a, b) => a + b)).toBe(windows);
      const shadowRaised = metricValue(after, 'sentinel_shadow_alerts_total', { type: 'raised' });
      expect(shadowRaised).toBeGreaterThan(0);
      // Published: only the live model's alerts.
      await waitFor(() => alerts.some((a) => a.type === 'raised'), 5_000, 'a live alert');
      expect(alerts.length).toBeGreaterThan(0);
      expect(new Set(alerts.map((a) => a.model.version))).toEqual(new Set([modelA.manifest.version]));
      expect(metricValue(after, 'sentinel_alerts_total', { type: 'raised' })).toBe(alerts.filter((a) => a.type === 'raised').length);
      expect(daemon.logText()).toContain('shadow alert raised (not published)');
      console.log(
        `SHADOW ${JSON.stringify({ test: 'shadow/compare', windows, shadowWindows: metricValue(after, 'sentinel_shadow_windows_scored_total'), scores: compared, decisions: decided, shadowRaised, liveRaised: alerts.filter((a) => a.type === 'raised').length })}`,
      );
    } finally {
      await daemon.stop();
      await done();
    }
  }, 90_000);

  it('promotion under load swaps the candidate in with no window dropped or scored twice; rollback brings the old model back', async () => {
    const path = join(mkdtempSync(join(work, 'models-')), 'pump.onnx');
    placeModel(path, modelA);
    placeModel(candidatePathFor(path), modelB);
    const { daemon, topics, done } = await shadowDaemon('shadow-promote', path);
    try {
      await waitFor(async () => (await shadowVersion(daemon)) === modelB.manifest.version, 10_000, 'candidate in shadow');
      const stream = new FaultyStreams(topics, { start: 10_000, length: 1 });
      let promotedAt = -1;
      let servedAt = -1;
      for (let step = 0; step < 400 || servedAt < 0 || step < servedAt + 100; step++) {
        if (step === 150) {
          const moved = await promote(path);
          expect(moved).toEqual({ version: modelB.manifest.version, replaced: modelA.manifest.version });
          promotedAt = step;
        }
        if (servedAt < 0 && served(daemon) === modelB.manifest.version) servedAt = step;
        if (step > 3_000) throw new Error('the promoted model was never served');
        await stream.step();
      }
      const text = await settle(daemon, stream.expectedWindows());
      expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(stream.expectedWindows());
      expect(metricValue(text, 'sentinel_windows_failed_total')).toBe(0);
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_info', { version: modelB.manifest.version })).toBe(1);
      // The candidate is live now: nothing scores in shadow any more, and the old model is kept for rollback.
      await waitFor(async () => (await shadowVersion(daemon)) === null, 10_000, 'shadow stopped');
      expect(existsSync(candidatePathFor(path))).toBe(false);
      expect(existsSync(manifestPathFor(previousPathFor(path)))).toBe(true);

      const back = await rollback(path);
      expect(back).toEqual({ version: modelA.manifest.version, replaced: modelB.manifest.version });
      await waitFor(() => served(daemon) === modelA.manifest.version, 10_000, 'rolled back');
      console.log(`SHADOW ${JSON.stringify({ test: 'shadow/promote', streams: topics.length, rows: stream.rows, promotedAtRow: promotedAt, servedAtRow: servedAt, windowsExpected: stream.expectedWindows(), windowsScored: metricValue(text, 'sentinel_windows_scored_total') })}`);
    } finally {
      await daemon.stop();
      await done();
    }
  }, 120_000);
});
