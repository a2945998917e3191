import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observe/log.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { connectClient, waitFor } from '../support/broker.js';
import { metricValue, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_MODEL, scoredWindows } from '../support/model.js';

const silent = createLogger('silent');

function embeddedConfig(overrides: ConfigInput = {}) {
  return validateConfig({
    outbox: { path: join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'outbox.jsonl') },
    broker: { url: null, embedded: { host: '127.0.0.1', port: 0 } },
    http: { host: '127.0.0.1', port: 0 },
    model: { path: DEFAULT_MODEL, warmupRuns: 1 },
    ingest: { maxReadingsPerSecondPerStream: 0 },
    ...overrides,
  });
}

function payload(sim: PumpSimulator): string {
  const r = sim.next();
  return JSON.stringify({ ts: r.ts, values: Object.fromEntries(sim.channels.map((c, i) => [c, r.values[i]])) });
}

async function startOnEmbedded(overrides: ConfigInput = {}): Promise<{ daemon: Daemon; client: MqttClient }> {
  const daemon = new Daemon(embeddedConfig(overrides), silent);
  await daemon.start();
  await waitFor(() => daemon.readiness().ready, 10_000, 'ready');
  const client = await connectClient({ url: daemon.brokerUrl, protocolVersion: 4, stop: async () => {} }, `embedded-${process.pid}-${Math.random()}`);
  return { daemon, client };
}

describe('daemon on its embedded broker (telemetry taken in-process from the broker)', () => {
  it('scores telemetry into one raised and one resolved alert, and counts bad input', async () => {
    const { daemon, client } = await startOnEmbedded();
    const alerts: Alert[] = [];
    client.on('message', (_t, m) => alerts.push(alertSchema.parse(JSON.parse(m.toString()))));
    await client.subscribeAsync('sentinel/alerts/#', { qos: 1 });
    try {
      const sim = new PumpSimulator({ seed: 5, faults: [{ kind: 'spike', channel: 2, start: 120, length: 12 }] });
      const rows = 260;
      for (let i = 0; i < rows; i++) await client.publishAsync('sensors/pump-e/telemetry', payload(sim), { qos: 1 });
      await client.publishAsync('sensors/pump-e/telemetry', '{"values":', { qos: 0 });
      await client.publishAsync('other/pump-e/telemetry', '{}', { qos: 1 });
      const text = await waitForMetric(daemon.httpPort, 'sentinel_windows_scored_total', scoredWindows(DEFAULT_MANIFEST, rows));
      await waitFor(() => alerts.length >= 2, 10_000, 'two alerts');
      expect(alerts.map((a) => `${a.type}:${a.streamId}`)).toEqual(['raised:pump-e', 'resolved:pump-e']);
      expect(alerts[0]?.topChannels[0]?.channel).toBe('pressure');
      expect(metricValue(text, 'sentinel_messages_received_total', { subscription: 'sensors/+/telemetry' })).toBe(rows + 1);
      expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'malformed' })).toBe(1);
      // Only the configured filters reach the pipeline: the other topic is not even received.
      expect(metricValue(text, 'sentinel_messages_received_total')).toBe(rows + 1);
    } finally {
      await client.endAsync();
      await daemon.stop();
    }
  });

  it('at QoS 1 a queue of 4 loses nothing: the broker waits for the pipeline before it reads on', async () => {
    const { daemon, client } = await startOnEmbedded({ queue: { capacity: 4 }, batch: { maxSize: 1, maxDelayMs: 0 } });
    try {
      const sim = new PumpSimulator({ seed: 6 });
      const rows = 2000;
      await Promise.all(Array.from({ length: rows }, () => client.publishAsync('sensors/pump-q/telemetry', payload(sim), { qos: 1 })));
      const text = await waitForMetric(daemon.httpPort, 'sentinel_windows_scored_total', scoredWindows(DEFAULT_MANIFEST, rows), 20_000);
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(rows);
      expect(metricValue(text, 'sentinel_readings_dropped_total')).toBe(0);
      expect(metricValue(text, 'sentinel_backpressure_waits_total')).toBeGreaterThan(0);
      expect(metricValue(text, 'sentinel_queue_depth')).toBeLessThanOrEqual(4);
    } finally {
      await client.endAsync();
      await daemon.stop();
    }
  });
});
