/**
 * Two models on one node through a real Mosquitto (issue 13, routes): a pump model on one topic family,
 * a compressor model (other channels, other window) on another. Each alerts only on faults in its own
 * streams; each counts its own windows under its own `model` label; swapping the pump model's file
 * leaves the compressor route untouched (no swap, no window lost or scored twice on either).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import type { Manifest } from '../../src/model/manifest.js';
import { PumpSimulator, type FaultPlan } from '../../src/offline/sim/pump.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { scoredWindows } from '../support/model.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

const PUMP_WINDOW = 20;
const COMPRESSOR_WINDOW = 10;
const COMPRESSOR_CHANNELS = ['pressure', 'temperature'];
let broker: MosquittoProcess;
let publisher: MqttClient;
let work: string;
let pumpA: ModelFiles;
let pumpB: ModelFiles;
let compressor: ModelFiles;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `routes-pub-${process.pid}`, reconnectPeriod: 0 });
  work = mkdtempSync(join(tmpdir(), 'sentinel-routes-'));
  pumpA = trainPumpModel(101, { name: 'pump-a', window: PUMP_WINDOW });
  pumpB = trainPumpModel(202, { name: 'pump-b', window: PUMP_WINDOW });
  // The other family on the other route: no baseline, thresholds of its own scale (the pump's are 1).
  compressor = trainPumpModel(303, { name: 'compressor', window: COMPRESSOR_WINDOW, channels: COMPRESSOR_CHANNELS, family: 'window-pca-t2q' });
}, 60_000);
afterAll(async () => {
  await publisher?.endAsync();
  await broker?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** One simulated asset per topic; publishes the channels its model reads, one row per step, QoS 1. */
class Assets {
  private readonly sims: PumpSimulator[];
  rows = 0;
  constructor(
    readonly topics: string[],
    private readonly channels: readonly string[] | null,
    faults: ReadonlyArray<FaultPlan[]>,
    seed: number,
  ) {
    this.sims = topics.map((_, i) => new PumpSimulator({ seed: seed + i, faults: faults[i] ?? [] }));
  }
  step(): Promise<unknown> {
    this.rows++;
    return Promise.all(
      this.sims.map((sim, i) => {
        const r = sim.next();
        const values = Object.fromEntries(sim.channels.flatMap((c, k) => (this.channels === null || this.channels.includes(c) ? [[c, r.values[k]]] : [])));
        return publisher.publishAsync(this.topics[i] as string, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
      }),
    );
  }
  /** Every full window of every asset, none during a baseline's warm-up. */
  windows(manifest: Pick<Manifest, 'window' | 'baseline'>): number {
    return this.topics.length * scoredWindows(manifest, this.rows);
  }
}

describe('routes: two models on one node', () => {
  it('each model scores only its own streams and alerts only on their faults; swapping one leaves the other untouched', async () => {
    const prefix = uniquePrefix('routes');
    const pumpPath = join(work, 'pump.onnx');
    const compressorPath = join(work, 'compressor.onnx');
    placeModel(pumpPath, pumpA);
    placeModel(compressorPath, compressor);

    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `routes-watch-${process.pid}`, reconnectPeriod: 0 });
    const alerts: Array<{ topic: string; alert: Alert }> = [];
    watcher.on('message', (topic, payload) => alerts.push({ topic, alert: alertSchema.parse(JSON.parse(payload.toString())) }));
    await watcher.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });

    const daemon = await startCapturedDaemon('routes', {
      broker: { url: broker.url, protocolVersion: 5 },
      subscriptions: [
        { topic: `${prefix}/pumps/+/telemetry`, stream: 'pumps/{1}', format: 'json-values', qos: 1 },
        { topic: `${prefix}/compressors/+/telemetry`, stream: 'compressors/{1}', format: 'json-values', qos: 1, model: 'compressor' },
      ],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      model: { name: 'pump', path: pumpPath, watch: true },
      models: [{ name: 'compressor', path: compressorPath }],
      batch: { maxSize: 64, maxDelayMs: 2 },
      log: { level: 'info', rejectLogIntervalMs: 0 },
    });
    try {
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      const models = daemon.daemon.readiness().detail.models as Array<{ model: string; name: string }>;
      expect(models.map((m) => [m.model, m.name])).toEqual([
        ['pump', 'pump-a'],
        ['compressor', 'compressor'],
      ]);

      // A level shift on pump 0's current (rows 120-199, after the pump model's 100-row baseline warm-up) and on compressor 1's pressure (rows 260-339).
      const pumps = new Assets(['p0', 'p1', 'p2'].map((p) => `${prefix}/pumps/${p}/telemetry`), null, [[{ kind: 'drift', channel: 1, start: 120, length: 80 }]], 41);
      const compressors = new Assets(
        ['c0', 'c1'].map((c) => `${prefix}/compressors/${c}/telemetry`),
        COMPRESSOR_CHANNELS,
        [[], [{ kind: 'drift', channel: 2, start: 260, length: 80 }]],
        51,
      );
      let swappedAt = -1;
      for (let row = 0; row < 480; row++) {
        if (row === 400) {
          // The pump route gets a new model file mid-stream; the compressor route must not notice.
          placeModel(pumpPath, pumpB);
          swappedAt = row;
        }
        await Promise.all([pumps.step(), compressors.step()]);
      }
      expect(pumpA.manifest.baseline?.warmupRows).toBeLessThan(120);
      const pumpWindows = pumps.windows(pumpA.manifest);
      const compressorWindows = compressors.windows(compressor.manifest);
      await daemon.waitForMetric('sentinel_windows_scored_total', pumpWindows, 20_000, { model: 'pump' });
      await daemon.waitForMetric('sentinel_windows_scored_total', compressorWindows, 20_000, { model: 'compressor' });
      await daemon.waitForMetric('sentinel_model_swaps_total', 1, 20_000, { model: 'pump', result: 'swapped' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const text = await daemon.metrics();

      // Every window exactly once, counted under its own model.
      expect(metricValue(text, 'sentinel_windows_scored_total', { model: 'pump' })).toBe(pumpWindows);
      expect(metricValue(text, 'sentinel_windows_scored_total', { model: 'compressor' })).toBe(compressorWindows);
      expect(metricValue(text, 'sentinel_windows_failed_total')).toBe(0);
      expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(0);
      // The swap was the pump route's alone.
      expect(metricValue(text, 'sentinel_model_swaps_total', { model: 'pump', result: 'swapped' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_swaps_total', { model: 'compressor' })).toBe(0);
      expect(metricValue(text, 'sentinel_model_info', { model: 'pump', version: pumpB.manifest.version })).toBe(1);
      expect(metricValue(text, 'sentinel_model_info', { model: 'compressor', version: compressor.manifest.version })).toBe(1);

      // Alerts: only the two faulty streams, each from its own model.
      await waitFor(() => alerts.filter((a) => a.alert.type === 'raised').length >= 2, 5_000, 'both raised alerts');
      const raised = alerts.filter((a) => a.alert.type === 'raised');
      const byStream = new Map<string, Set<string>>();
      for (const { alert } of raised) byStream.set(alert.streamId, (byStream.get(alert.streamId) ?? new Set()).add(alert.model.name));
      expect([...byStream.keys()].sort()).toEqual(['compressors/c1', 'pumps/p0']);
      expect([...(byStream.get('pumps/p0') as Set<string>)]).toEqual(['pump-a']);
      expect([...(byStream.get('compressors/c1') as Set<string>)]).toEqual(['compressor']);
      expect(metricValue(text, 'sentinel_alerts_total', { model: 'pump', type: 'raised' })).toBe(raised.filter((a) => a.alert.streamId.startsWith('pumps/')).length);
      expect(metricValue(text, 'sentinel_alerts_total', { model: 'compressor', type: 'raised' })).toBe(
        raised.filter((a) => a.alert.streamId.startsWith('compressors/')).length,
      );
      // The compressor's alert reports the compressor's own thresholds and window.
      const compressorAlert = raised.find((a) => a.alert.streamId === 'compressors/c1')?.alert;
      expect(compressorAlert?.thresholds.raise).toBe(compressor.manifest.policy.raiseThreshold);
      console.log(
        `ROUTES ${JSON.stringify({ pumpWindows, compressorWindows, swappedAt, raised: raised.map((a) => [a.alert.streamId, a.alert.model.name]), alerts: alerts.length })}`,
      );
    } finally {
      await daemon.stop();
      await watcher.endAsync();
    }
  }, 120_000);
});
