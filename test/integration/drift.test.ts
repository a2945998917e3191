/**
 * Input drift and quality per stream through a real Mosquitto (issue 13 part 4): a stream whose
 * temperature shifts by 5 training σ moves to the `severe` band and is announced on the drift topic,
 * named in the status message and counted in the band gauge; a stream with one reading in five
 * malformed goes `poor`; a healthy stream raises no drift event at all. With a model of per-stream
 * baselines (issue 12), a slow drift is reported on the drift topic and raises no fault alert, and a
 * stream at another operating point is neither drifting nor anomalous.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, statusSchema, type Alert, type Status } from '../../src/alert/alert.js';
import { buildDefaultModel } from '../../src/offline/train/default-model.js';
import { driftEventSchema, type DriftEvent } from '../../src/drift/wire.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

const SHIFT_FROM = 200;
const ROWS = 420;
let broker: MosquittoProcess;
let publisher: MqttClient;
let work: string;
let model: ModelFiles;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `drift-pub-${process.pid}`, reconnectPeriod: 0 });
  work = mkdtempSync(join(tmpdir(), 'sentinel-drift-'));
  // Drift against the training statistics is the case of a model without per-stream baselines.
  model = trainPumpModel(101, { name: 'pump', family: 'window-pca-t2q' });
}, 60_000);
afterAll(async () => {
  await publisher?.endAsync();
  await broker?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('drift and input quality per stream', () => {
  it('a shifted stream goes severe and is announced, a malformed one goes poor, a healthy one stays quiet', async () => {
    const prefix = uniquePrefix('drift');
    const modelPath = join(work, 'pump.onnx');
    placeModel(modelPath, model);
    const stats = model.manifest.training.stats;
    expect(stats).toBeDefined();
    const temperature = model.manifest.channels.indexOf('temperature');
    const shift = 5 * (stats?.std[temperature] as number);

    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `drift-watch-${process.pid}`, reconnectPeriod: 0 });
    const events: DriftEvent[] = [];
    let status: Status | null = null;
    watcher.on('message', (topic, payload) => {
      const json: unknown = JSON.parse(payload.toString());
      if (topic.startsWith(`${prefix}/drift/`)) events.push(driftEventSchema.parse(json));
      else status = statusSchema.parse(json);
    });
    await watcher.subscribeAsync([`${prefix}/drift/#`, `${prefix}/status/#`], { qos: 1 });

    const daemon = await startCapturedDaemon('drift', {
      broker: { url: broker.url, protocolVersion: 5 },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      drift: { horizon: 100, minReadings: 50, prefix: `${prefix}/drift`, topN: 3 },
      schedule: { heartbeat: '* * * * * *' },
      model: { path: modelPath },
      log: { level: 'info', rejectLogIntervalMs: 0 },
    });
    try {
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      const sims = ['healthy', 'shifted', 'garbled'].map((_, i) => new PumpSimulator({ seed: 70 + i }));
      let malformed = 0;
      for (let row = 0; row < ROWS; row++) {
        await Promise.all(
          sims.map((sim, i) => {
            const r = sim.next();
            if (i === 1 && row >= SHIFT_FROM) r.values[temperature] = (r.values[temperature] as number) + shift;
            const values: Record<string, unknown> = Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]]));
            if (i === 2 && row % 5 === 4) {
              values.vibration = 'broken';
              malformed++;
            }
            const stream = ['healthy', 'shifted', 'garbled'][i] as string;
            return publisher.publishAsync(`${prefix}/sensors/${stream}/telemetry`, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
          }),
        );
      }
      await waitFor(() => events.some((e) => e.streamId === 'shifted' && e.measure === 'drift' && e.to === 'severe'), 10_000, 'the severe drift event');
      await waitFor(() => events.some((e) => e.streamId === 'garbled' && e.measure === 'quality' && e.to === 'poor'), 10_000, 'the poor quality event');
      await daemon.waitForMetric('sentinel_streams_by_drift_band', 1, 10_000, { band: 'severe' });

      const severe = events.find((e) => e.streamId === 'shifted' && e.to === 'severe') as DriftEvent;
      expect(severe.channel).toBe('temperature');
      expect(severe.model.name).toBe('pump');
      expect(severe.drift as number).toBeGreaterThanOrEqual(3);
      expect(severe.shift as number).toBeGreaterThan(2);
      // Announced within the horizon's reach of the shift: the event's record time says which row moved it.
      const movedAt = (Date.parse(severe.recordTs) - Date.UTC(2024, 0, 1)) / 1000;
      expect(movedAt).toBeGreaterThan(SHIFT_FROM);
      expect(movedAt).toBeLessThan(SHIFT_FROM + 100);
      // The healthy stream never left its bands; the garbled one only for its quality.
      expect(events.filter((e) => e.streamId === 'healthy')).toEqual([]);
      expect(events.filter((e) => e.streamId === 'garbled' && e.measure === 'drift' && e.to === 'severe')).toEqual([]);
      const poor = events.find((e) => e.streamId === 'garbled' && e.to === 'poor') as DriftEvent;
      expect(poor.rejectedShare).toBeGreaterThanOrEqual(0.05);

      const text = await daemon.metrics();
      expect(metricValue(text, 'sentinel_streams_by_drift_band', { model: 'default', band: 'severe' })).toBe(1);
      expect(metricValue(text, 'sentinel_streams_by_input_quality', { model: 'default', band: 'poor' })).toBe(1);
      expect(metricValue(text, 'sentinel_drift_events_total', { model: 'default' })).toBe(events.length);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'invalid_payload' }) + metricValue(text, 'sentinel_readings_rejected_total', { reason: 'malformed' })).toBe(malformed);

      // The status message (republished every second here) names the most drifting stream first.
      await waitFor(() => (status as Status | null)?.drift?.default?.top[0]?.streamId === 'shifted', 5_000, 'status with drift');
      const snapshot = (status as unknown as Status).drift?.default;
      expect(snapshot?.bands.severe).toBe(1);
      expect(snapshot?.top[0]?.channel).toBe('temperature');
      console.log(`DRIFT ${JSON.stringify({ events: events.map((e) => [e.streamId, e.measure, e.from, e.to, e.drift, e.recordTs]), malformed, top: snapshot?.top.map((t) => [t.streamId, t.band, t.drift]) })}`);
    } finally {
      await daemon.stop();
      await watcher.endAsync();
    }
  }, 90_000);

  it('with per-stream baselines: a slow drift is reported as drift, not as a fault; another operating point is neither', async () => {
    const prefix = uniquePrefix('slowdrift');
    const modelPath = join(work, 'baseline.onnx');
    const trained = buildDefaultModel();
    placeModel(modelPath, { onnx: trained.onnx, manifest: trained.manifest });
    const temperature = trained.manifest.channels.indexOf('temperature');
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `slowdrift-watch-${process.pid}`, reconnectPeriod: 0 });
    const events: DriftEvent[] = [];
    const alerts: Alert[] = [];
    watcher.on('message', (topic, payload) => {
      const json: unknown = JSON.parse(payload.toString());
      if (topic.startsWith(`${prefix}/drift/`)) events.push(driftEventSchema.parse(json));
      else if (topic.startsWith(`${prefix}/alerts/`)) alerts.push(alertSchema.parse(json));
    });
    await watcher.subscribeAsync([`${prefix}/drift/#`, `${prefix}/alerts/#`], { qos: 1 });
    const daemon = await startCapturedDaemon('slowdrift', {
      broker: { url: broker.url, protocolVersion: 5 },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      // The horizon spans two of the simulator's 1,440-row load cycles, so the cycle itself is not drift.
      drift: { horizon: 3_000, prefix: `${prefix}/drift` },
      model: { path: modelPath },
      log: { level: 'info', rejectLogIntervalMs: 0 },
    });
    // The first 3,000 rows are each stream's reference, then the drifting one walks for 4,000 more.
    const DRIFT_FROM = 3_000;
    const DRIFT_ROWS = 4_000;
    try {
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      // The same pump three times: steady, drifting slowly (temperature, +1 °C per 1,000 rows), and at another operating point.
      const sims = [
        new PumpSimulator({ seed: 90 }),
        new PumpSimulator({ seed: 91, faults: [{ kind: 'drift', channel: temperature, start: DRIFT_FROM, length: DRIFT_ROWS, magnitude: DRIFT_ROWS / 1_000 / 0.9 }] }),
        new PumpSimulator({ seed: 92 }),
      ];
      const streams = ['steady', 'drifting', 'elsewhere'];
      // 100 rows in flight at a time (one connection keeps each stream in order).
      for (let row = 0; row < DRIFT_FROM + DRIFT_ROWS; row += 100) {
        const sent: Array<Promise<unknown>> = [];
        for (let k = row; k < Math.min(row + 100, DRIFT_FROM + DRIFT_ROWS); k++) {
          sims.forEach((sim, i) => {
            const r = sim.next();
            // Another operating point: every channel 30 % higher.
            const values = Object.fromEntries(sim.channels.map((c, j) => [c, (r.values[j] as number) * (i === 2 ? 1.3 : 1)]));
            sent.push(publisher.publishAsync(`${prefix}/sensors/${streams[i]}/telemetry`, JSON.stringify({ ts: r.ts, values }), { qos: 1 }));
          });
        }
        await Promise.all(sent);
      }
      // A stream is scored once its warm-up (longer than a window) is over.
      const scored = 3 * (DRIFT_FROM + DRIFT_ROWS - (trained.manifest.baseline?.warmupRows ?? 0));
      await daemon.waitForMetric('sentinel_windows_scored_total', scored, 30_000);
      await waitFor(() => events.some((e) => e.streamId === 'drifting' && e.measure === 'drift' && e.to === 'severe'), 10_000, 'the severe drift event');
      console.log(`SLOW-DRIFT ${JSON.stringify({ events: events.map((e) => [e.streamId, e.from, e.to, e.channel, e.drift, e.recordTs]), alerts: alerts.map((a) => [a.streamId, a.type, a.recordTs, a.evidence?.map((x) => x.test)]) })}`);
      const severe = events.find((e) => e.streamId === 'drifting' && e.to === 'severe') as DriftEvent;
      expect(severe.channel).toBe('temperature');
      expect(severe.shift as number).toBeGreaterThan(2.5);
      // Severe well inside the walk (3 reference σ is under 2 °C here), not at its end.
      const severeAt = (Date.parse(severe.recordTs) - Date.UTC(2024, 0, 1)) / 1000;
      expect(severeAt).toBeGreaterThan(DRIFT_FROM);
      expect(severeAt).toBeLessThan(DRIFT_FROM + 0.75 * DRIFT_ROWS);
      // Reported as drift only: no fault alert on any stream. The steady stream's own load wander may
      // touch the moderate band (advisory, with hysteresis), but neither other stream is ever severe.
      expect(alerts).toEqual([]);
      expect(events.filter((e) => e.streamId !== 'drifting' && e.to === 'severe')).toEqual([]);
    } finally {
      await daemon.stop();
      await watcher.endAsync();
    }
  }, 120_000);
});
