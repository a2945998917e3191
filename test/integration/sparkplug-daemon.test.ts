/**
 * The Sparkplug B host wired into the daemon, through a real Mosquitto: an edge node's NBIRTH and NDATA
 * by alias become readings of the stream <group>/<edgeNode> scored by the default model; a fault on it
 * raises an alert on the alert topic; hostile payloads are counted; the edge node's death (its will)
 * marks the stream stale and closes its alert as a data gap; the host's STATE is online while it runs
 * and offline after it stops.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { DataType, encodePayload, type MetricInput } from '../../src/ingest/sparkplug/payload.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';

/** Metric names on the edge node → the default model's channels. */
const METRICS = { 'Pump/Vibration': 'vibration', 'Pump/Current': 'current', 'Pump/Pressure': 'pressure', 'Pump/Temperature': 'temperature', 'Pump/Flow': 'flow' };
let broker: MosquittoProcess;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
}, 30_000);
afterAll(async () => {
  await broker?.dispose();
});

describe('Sparkplug B host in the daemon', () => {
  it('births and data by alias are scored, a fault alerts, hostile payloads are counted, a death is a data gap', async () => {
    const prefix = uniquePrefix('spd');
    const group = prefix.replaceAll('/', '-');
    const hostId = `${group}-host`;
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `${group}-watch`, reconnectPeriod: 0 });
    const alerts: Alert[] = [];
    const states: Array<{ online: boolean }> = [];
    watcher.on('message', (topic, payload) => {
      if (topic.startsWith('spBv1.0/STATE/')) states.push(JSON.parse(payload.toString()) as { online: boolean });
      else alerts.push(alertSchema.parse(JSON.parse(payload.toString())));
    });
    await watcher.subscribeAsync([`${prefix}/alerts/#`, `spBv1.0/STATE/${hostId}`], { qos: 1 });

    const daemon = await startCapturedDaemon('spd', {
      broker: { url: broker.url, protocolVersion: 5 },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry` }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      sparkplug: { enabled: true, hostId, edgeNodes: [{ group }], channels: METRICS },
      log: { level: 'info', rejectLogIntervalMs: 0 },
    });
    let edge: MqttClient | null = null;
    try {
      await waitFor(() => states.some((s) => s.online), 10_000, 'the host STATE birth');
      const death = encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', datatype: DataType.Int64, longValue: 7 }] });
      edge = await mqtt.connectAsync(broker.url, {
        protocolVersion: 5,
        clientId: `${group}-edge`,
        reconnectPeriod: 0,
        will: { topic: `spBv1.0/${group}/NDEATH/pump1`, payload: Buffer.from(death), qos: 1, retain: false },
      });
      let seq = 0;
      const publish = (verb: string, metrics: MetricInput[], timestamp: number): Promise<unknown> =>
        (edge as MqttClient).publishAsync(`spBv1.0/${group}/${verb}/pump1`, Buffer.from(encodePayload({ timestamp, seq: (seq++ & 0xff), metrics })), { qos: 0 });
      const names = Object.keys(METRICS);
      const sim = new PumpSimulator({ seed: 5, startTs: Date.now() - 400_000, faults: [{ kind: 'drift', channel: 1, start: 150, length: 400 }] });
      const first = sim.next();
      await publish(
        'NBIRTH',
        [
          { name: 'bdSeq', datatype: DataType.Int64, longValue: 7 },
          { name: 'Node Control/Rebirth', datatype: DataType.Boolean, booleanValue: false },
          ...names.map((name, k) => ({ name, alias: k + 1, datatype: DataType.Double, doubleValue: first.values[k] as number })),
        ],
        first.ts,
      );
      const rows = 300;
      for (let row = 1; row < rows; row++) {
        const r = sim.next();
        await publish('NDATA', names.map((_n, k) => ({ alias: k + 1, datatype: DataType.Double, doubleValue: r.values[k] as number, timestamp: r.ts })), r.ts);
        // Hostile messages in between: garbage bytes on the data topic, and data for an alias never born.
        if (row === 50) await edge.publishAsync(`spBv1.0/${group}/NDATA/pump1`, Buffer.from('not a protobuf'), { qos: 0 });
        if (row % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor(() => alerts.some((a) => a.type === 'raised'), 15_000, 'a raised alert');
      const raised = alerts.find((a) => a.type === 'raised') as Alert;
      expect(raised.streamId).toBe(`${group}/pump1`);
      expect(raised.topChannels[0]?.channel).toBe('current');

      // Every message taken (the birth, the data, the garbage) before the edge node's socket dies.
      await daemon.waitForMetric('sentinel_sparkplug_events_total', rows + 1, 10_000, { event: 'received' });
      // The death (the edge node's will, when its socket dies): the stream is stale, its open alert closed as a data gap.
      (edge as unknown as { stream: { destroy(): void } }).stream.destroy();
      edge = null;
      await daemon.waitForMetric('sentinel_streams_went_stale_total', 1, 10_000);
      const text = await daemon.metrics();
      const readings = metricValue(text, 'sentinel_sparkplug_events_total', { event: 'reading' });
      // Every mapped metric of the birth and of each data message is a reading.
      expect(readings).toBe(rows * names.length);
      expect(metricValue(text, 'sentinel_sparkplug_events_total', { event: 'nbirth' })).toBe(1);
      expect(metricValue(text, 'sentinel_sparkplug_events_total', { event: 'ndeath' })).toBe(1);
      expect(metricValue(text, 'sentinel_sparkplug_rejected_total')).toBeGreaterThanOrEqual(1);
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(readings);
      expect(metricValue(text, 'sentinel_windows_scored_total')).toBeGreaterThan(0);
      // The fault was still on when the edge node died: its alert is closed as a data gap, not by its score.
      await waitFor(() => alerts.some((a) => a.type === 'resolved'), 5_000, 'the alert closed');
      expect(alerts.filter((a) => a.type === 'resolved').map((a) => a.reason)).toEqual(['stale']);
      console.log(`SPARKPLUG-DAEMON ${JSON.stringify({ readings, windows: metricValue(text, 'sentinel_windows_scored_total'), alerts: alerts.map((a) => [a.type, a.reason ?? null]), rejected: metricValue(text, 'sentinel_sparkplug_rejected_total') })}`);
    } finally {
      edge?.end(true);
      await daemon.stop();
    }
    await waitFor(() => states.at(-1)?.online === false, 5_000, 'the host STATE death');
    await watcher.endAsync();
  }, 90_000);
});
