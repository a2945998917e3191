import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, statusSchema, type Alert } from '../../src/alert/alert.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observe/log.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { connectClient, startTestBroker, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_MODEL, scoredWindows } from '../support/model.js';

let broker: TestBroker;
let publisher: MqttClient;
const silent = createLogger('silent');

beforeAll(async () => {
  broker = await startTestBroker();
  publisher = await connectClient(broker, `pub-${process.pid}`);
});
afterAll(async () => {
  await publisher.endAsync();
  await broker.stop();
});

function daemonConfig(prefix: string, overrides: ConfigInput = {}) {
  return validateConfig({
    outbox: { path: join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'outbox.jsonl') },
    nodeName: 'it-node',
    broker: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `sentinel-${prefix.replace(/\//g, '-')}` },
    subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
    alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
    http: { host: '127.0.0.1', port: 0 },
    model: { path: DEFAULT_MODEL, warmupRuns: 1 },
    batch: { maxSize: 64, maxDelayMs: 2 },
    ...overrides,
  });
}

/** A daemon subscribed at QoS 0 with the slowest pipeline (one window per inference run), ready, and its topic prefix. */
async function startQos0Daemon(name: string, queue: NonNullable<ConfigInput['queue']>): Promise<{ daemon: Daemon; prefix: string }> {
  const prefix = uniquePrefix(name);
  const config = daemonConfig(prefix, { queue, batch: { maxSize: 1, maxDelayMs: 0 }, ingest: { maxReadingsPerSecondPerStream: 0 } });
  config.subscriptions[0] = { ...config.subscriptions[0]!, qos: 0 };
  const daemon = new Daemon(config, silent);
  await daemon.start();
  return { daemon, prefix };
}

function payload(sim: PumpSimulator): string {
  const r = sim.next();
  return JSON.stringify({ ts: r.ts, values: Object.fromEntries(sim.channels.map((c, i) => [c, r.values[i]])) });
}

async function collect(client: MqttClient, filter: string): Promise<{ alerts: Alert[]; raw: Buffer[] }> {
  const alerts: Alert[] = [];
  const raw: Buffer[] = [];
  client.on('message', (topic, message) => {
    if (!topic.startsWith(filter.replace('/#', ''))) return;
    raw.push(message);
    alerts.push(alertSchema.parse(JSON.parse(message.toString())));
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { alerts, raw };
}

describe('daemon through a real broker', () => {
  it('scores telemetry, publishes one raised and one resolved for a fault, and counts bad input by reason', async () => {
    const prefix = uniquePrefix('fault');
    const daemon = new Daemon(daemonConfig(prefix), silent);
    await daemon.start();
    const watcher = await connectClient(broker, `watch-${process.pid}`);
    const { alerts } = await collect(watcher, `${prefix}/alerts/#`);
    const statuses: unknown[] = [];
    watcher.on('message', (topic, message) => {
      if (topic === `${prefix}/status/it-node`) statuses.push(statusSchema.parse(JSON.parse(message.toString())));
    });
    await watcher.subscribeAsync(`${prefix}/status/#`, { qos: 1 });
    try {
      await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
      const faulty = new PumpSimulator({ seed: 3, faults: [{ kind: 'spike', channel: 0, start: 150, length: 15 }] });
      const healthy = new PumpSimulator({ seed: 4 });
      const rows = 300;
      for (let i = 0; i < rows; i++) {
        await publisher.publishAsync(`${prefix}/sensors/pump-a/telemetry`, payload(faulty), { qos: 1 });
        await publisher.publishAsync(`${prefix}/sensors/pump-b/telemetry`, payload(healthy), { qos: 1 });
      }
      const bad: Array<[string, string | Buffer]> = [
        [`${prefix}/sensors/pump-c/telemetry`, '{"values":'],
        [`${prefix}/sensors/pump-c/telemetry`, '{"values":{"vibration":1}}'],
        [`${prefix}/sensors/pump-c/telemetry`, '{"values":{"humidity":1,"current":1,"pressure":1,"temperature":1,"flow":1}}'],
        [`${prefix}/sensors/pump-c/telemetry`, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00])],
        [`${prefix}/sensors/pump-c/telemetry`, JSON.stringify({ values: { vibration: 'x' } })],
        [`${prefix}/sensors/pump-c/telemetry`, 'x'.repeat(20_000)],
      ];
      for (const [topic, message] of bad) await publisher.publishAsync(topic, message, { qos: 1 });
      const expectedWindows = 2 * scoredWindows(DEFAULT_MANIFEST, rows);
      await waitFor(() => alerts.length >= 2, 15_000, 'two alerts');
      const text = await waitForMetric(daemon.httpPort, 'sentinel_windows_scored_total', expectedWindows);

      expect(alerts.map((a) => [a.type, a.streamId])).toEqual([['raised', 'pump-a'], ['resolved', 'pump-a']]);
      const [raised, resolved] = alerts as [Alert, Alert];
      expect(raised.score).toBeGreaterThanOrEqual(raised.thresholds.raise);
      expect(raised.topChannels[0]?.channel).toBe('vibration');
      expect(raised.model.name).toBe('default');
      expect(raised.eventId).not.toBe(resolved.eventId);
      expect(resolved.peakScore).toBeGreaterThanOrEqual(raised.score);
      expect(Date.parse(raised.recordTs)).toBeGreaterThanOrEqual(Date.parse('2024-01-01T00:02:30Z'));

      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(2 * rows);
      expect(metricValue(text, 'sentinel_alerts_total', { type: 'raised' })).toBe(1);
      expect(metricValue(text, 'sentinel_alerts_total', { type: 'resolved' })).toBe(1);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'malformed' })).toBe(2);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'wrong_channel_count' })).toBe(1);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'unknown_channel' })).toBe(1);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'invalid_payload' })).toBe(1);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'oversized' })).toBe(1);
      expect(metricValue(text, 'sentinel_messages_received_total')).toBe(2 * rows + bad.length);
      expect(metricValue(text, 'sentinel_model_info', { name: 'default', provider: 'cpu' })).toBe(1);
      expect(metricValue(text, 'sentinel_broker_connected')).toBe(1);
      await waitFor(() => statuses.length > 0, 5_000, 'status');
      expect(statuses[0]).toMatchObject({ state: 'online', nodeName: 'it-node', provider: 'cpu' });
      const ready = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ready: true, broker: 'connected', provider: 'cpu' });
    } finally {
      expect(await daemon.stop()).toBe(true);
      await watcher.endAsync();
    }
  });

  it('applies backpressure at QoS 1: a tiny queue slows intake but loses nothing', async () => {
    const prefix = uniquePrefix('backpressure');
    const daemon = new Daemon(daemonConfig(prefix, { queue: { capacity: 4 }, batch: { maxSize: 2, maxDelayMs: 1 } }), silent);
    await daemon.start();
    try {
      await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
      const sims = Array.from({ length: 5 }, (_, i) => new PumpSimulator({ seed: 10 + i }));
      const rows = 200;
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < rows; i++) {
        sims.forEach((sim, s) => sends.push(publisher.publishAsync(`${prefix}/sensors/p${s}/telemetry`, payload(sim), { qos: 1 })));
      }
      await Promise.all(sends);
      const text = await waitForMetric(daemon.httpPort, 'sentinel_windows_scored_total', 5 * scoredWindows(DEFAULT_MANIFEST, rows), 30_000);
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(5 * rows);
      expect(metricValue(text, 'sentinel_readings_dropped_total')).toBe(0);
      expect(metricValue(text, 'sentinel_backpressure_waits_total')).toBeGreaterThan(0);
      expect(metricValue(text, 'sentinel_queue_depth')).toBeLessThanOrEqual(4);
    } finally {
      await daemon.stop();
    }
  });

  it('at QoS 0 a burst into a small queue waits for room instead of dropping', async () => {
    // A long wait limit: this test is about waiting, not about how slow a shared CI machine may get.
    const { daemon, prefix } = await startQos0Daemon('qos0-burst', { capacity: 8, dropPolicy: 'drop-newest', qos0MaxWaitMs: 5_000 });
    try {
      await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
      const sim = new PumpSimulator({ seed: 2 });
      const rows = 2000;
      for (let i = 0; i < rows; i++) publisher.publish(`${prefix}/sensors/p/telemetry`, payload(sim), { qos: 0 });
      const text = await waitForMetric(daemon.httpPort, 'sentinel_windows_scored_total', scoredWindows(DEFAULT_MANIFEST, rows), 20_000);
      expect(metricValue(text, 'sentinel_messages_received_total')).toBe(rows);
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(rows);
      expect(metricValue(text, 'sentinel_readings_dropped_total')).toBe(0);
      expect(metricValue(text, 'sentinel_backpressure_waits_total')).toBeGreaterThan(0);
    } finally {
      await daemon.stop();
    }
  });

  it('at QoS 0 counts every drop: received = queued + dropped', async () => {
    const { daemon, prefix } = await startQos0Daemon('qos0', { capacity: 2, dropPolicy: 'drop-newest', qos0MaxWaitMs: 0 });
    try {
      await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
      const sim = new PumpSimulator({ seed: 1 });
      const rows = 2000;
      for (let i = 0; i < rows; i++) publisher.publish(`${prefix}/sensors/p/telemetry`, payload(sim), { qos: 0 });
      let text = '';
      let last = -1;
      await waitFor(() => {
        void scrape(daemon.httpPort).then((t) => (text = t));
        const received = metricValue(text, 'sentinel_messages_received_total');
        const settled = received > 0 && received === last;
        last = received;
        return settled;
      }, 20_000, 'intake to settle');
      await new Promise((resolve) => setTimeout(resolve, 300));
      text = await scrape(daemon.httpPort);
      const received = metricValue(text, 'sentinel_messages_received_total');
      const queued = metricValue(text, 'sentinel_readings_queued_total');
      const dropped = metricValue(text, 'sentinel_readings_dropped_total', { reason: 'queue_full_drop_newest' });
      expect(received).toBeGreaterThan(0);
      expect(dropped).toBeGreaterThan(0);
      expect(queued + dropped).toBe(received);
      expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(scoredWindows(DEFAULT_MANIFEST, queued));
    } finally {
      await daemon.stop();
    }
  });

  it('passes mqtt.js its own log lines at trace level, and keeps them out otherwise', async () => {
    const lines = async (level: string): Promise<Array<{ component?: string; msg?: string }>> => {
      const out = new PassThrough();
      const chunks: string[] = [];
      out.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
      const daemon = new Daemon(daemonConfig(uniquePrefix(`log-${level}`)), createLogger(level, out));
      await daemon.start();
      try {
        await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
      } finally {
        await daemon.stop();
      }
      return chunks.join('').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { component?: string; msg?: string });
    };
    const traced = (await lines('trace')).filter((l) => l.component === 'mqtt.js');
    expect(traced.length).toBeGreaterThan(5);
    expect(traced.some((l) => /connect/i.test(l.msg ?? ''))).toBe(true);
    expect((await lines('debug')).filter((l) => l.component === 'mqtt.js')).toEqual([]);
  });
});

