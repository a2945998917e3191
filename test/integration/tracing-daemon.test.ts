/**
 * OpenTelemetry in the daemon, through a real broker into an in-process OTLP/HTTP receiver: an alert
 * decided from MQTT telemetry is traced from its batch (batch → inference, decide) to its PUBACK
 * (`sentinel.alert.publish` with the alert's eventId), every span ended reaches the receiver by the
 * time the daemon has stopped, and with tracing off no tracing stage runs and nothing is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { connectClient, startTestBroker, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_WARMUP_ROWS, scoredWindows } from '../support/model.js';
import { OtlpReceiver } from '../support/otlp-receiver.js';

let broker: TestBroker;
let receiver: OtlpReceiver;

beforeAll(async () => {
  broker = await startTestBroker();
  receiver = await new OtlpReceiver().start();
});
afterAll(async () => {
  await receiver?.stop();
  await broker?.stop();
});

/** Publishes a pump's telemetry at QoS 1 with a drift fault on one channel from 40 rows after the default model's baseline warm-up. */
async function publishFault(client: Awaited<ReturnType<typeof connectClient>>, topic: string, rows: number): Promise<void> {
  const sim = new PumpSimulator({ seed: 4, startTs: Date.now() - 300_000, faults: [{ kind: 'drift', channel: 1, start: DEFAULT_WARMUP_ROWS + 40, length: 80 }] });
  for (let i = 0; i < rows; i++) {
    const r = sim.next();
    const values = Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]]));
    await client.publishAsync(topic, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
  }
}

describe('tracing in the daemon', () => {
  it('traces an MQTT alert from its batch to its PUBACK, with its eventId, and exports every span', async () => {
    const prefix = uniquePrefix('trace');
    const daemon = await startCapturedDaemon('trace', {
      broker: { url: broker.url, protocolVersion: broker.protocolVersion },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry` }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      model: { name: 'pump' },
      tracing: { enabled: true, endpoint: receiver.url, exportIntervalMs: 200 },
      log: { level: 'info' },
    });
    const client = await connectClient(broker, `${prefix.replaceAll('/', '-')}-c`);
    const alerts: Alert[] = [];
    client.on('message', (_topic, payload) => alerts.push(alertSchema.parse(JSON.parse(payload.toString()))));
    let stopped = false;
    try {
      expect(daemon.daemon.stageNames).toContain('tracing');
      await client.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      await publishFault(client, `${prefix}/sensors/p1/telemetry`, DEFAULT_WARMUP_ROWS + 120);
      await waitFor(() => alerts.some((a) => a.type === 'raised'), 15_000, 'a raised alert on MQTT');
      const raised = alerts.find((a) => a.type === 'raised') as Alert;

      await waitFor(() => receiver.named('sentinel.alert.publish').some((s) => s.attributes['sentinel.alert.event_id'] === raised.eventId), 10_000, 'the alert span');
      const publish = receiver.named('sentinel.alert.publish').find((s) => s.attributes['sentinel.alert.event_id'] === raised.eventId);
      expect(publish?.attributes).toMatchObject({ 'sentinel.alert.type': 'raised', 'sentinel.stream': 'p1', 'sentinel.alert.outcome': 'acknowledged', 'sentinel.model.version': raised.model.version });
      // The span ends at the PUBACK: after the decision, and it has a length.
      expect((publish?.endNs ?? 0n) > (publish?.startNs ?? 0n)).toBe(true);
      await waitFor(() => receiver.byId(publish?.parentSpanId ?? '') !== undefined, 10_000, 'its decide span');
      const decide = receiver.byId(publish?.parentSpanId ?? '');
      expect(decide?.name).toBe('sentinel.decide');
      const root = receiver.byId(decide?.parentSpanId ?? '');
      expect(root?.name).toBe('sentinel.batch');
      expect(root?.attributes).toMatchObject({ 'sentinel.model': 'pump', 'sentinel.provider': 'cpu', 'sentinel.shadow': false });
      expect(Number(root?.attributes['sentinel.alerts.raised'])).toBeGreaterThanOrEqual(1);
      const inference = receiver.spans.find((s) => s.name === 'sentinel.inference' && s.parentSpanId === root?.spanId);
      expect(inference).toBeDefined();
      expect(new Set([publish, decide, root, inference].map((s) => s?.traceId)).size).toBe(1);
      expect(root?.resource).toMatchObject({ 'service.name': 'sentinel', 'service.instance.id': 'rel-node' });
      // The window's readings arrived before its model run started (give or take the SDK's ~1 ms anchoring per span).
      expect((root?.startNs ?? 0n) <= (inference?.startNs ?? 0n) + 2_000_000n).toBe(true);

      const scored = metricValue(await daemon.metrics(), 'sentinel_windows_scored_total');
      stopped = true;
      await daemon.stop();
      // Every span ended went out before the daemon stopped: ended = exported = received, none failed.
      const text = daemon.logText();
      expect(text).toContain('"msg":"tracing on"');
      const batches = receiver.named('sentinel.batch').filter((s) => s.traceId !== '' && s.attributes['sentinel.model'] === 'pump');
      const windows = batches.reduce((sum, s) => sum + Number(s.attributes['sentinel.batch.windows']), 0);
      expect(windows).toBe(scored);
      const after = await daemon.daemon.metrics.registry.metrics();
      const ended = metricValue(after, 'sentinel_trace_spans_total', { outcome: 'ended' });
      expect(ended).toBeGreaterThan(0);
      expect(metricValue(after, 'sentinel_trace_spans_total', { outcome: 'exported' })).toBe(ended);
      expect(metricValue(after, 'sentinel_trace_spans_total', { outcome: 'export_failed' })).toBe(0);
      expect(receiver.spans).toHaveLength(ended);
      console.log(`TRACING-DAEMON ${JSON.stringify({ windows: scored, batches: batches.length, spans: receiver.spans.length, exports: receiver.requests.length })}`);
    } finally {
      await client.endAsync();
      if (!stopped) await daemon.stop();
    }
  }, 60_000);

  it('with tracing off runs no tracing stage and sends nothing', async () => {
    const before = receiver.requests.length;
    const prefix = uniquePrefix('notrace');
    const daemon = await startCapturedDaemon('notrace', {
      broker: { url: broker.url, protocolVersion: broker.protocolVersion },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry` }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      log: { level: 'info' },
    });
    const client = await connectClient(broker, `${prefix.replaceAll('/', '-')}-c`);
    try {
      expect(daemon.daemon.stageNames).not.toContain('tracing');
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      const rows = DEFAULT_WARMUP_ROWS + 60;
      await publishFault(client, `${prefix}/sensors/p1/telemetry`, rows);
      await daemon.waitForMetric('sentinel_windows_scored_total', scoredWindows(DEFAULT_MANIFEST, rows), 15_000, { model: 'default' });
      const text = await daemon.metrics();
      for (const outcome of ['ended', 'exported', 'export_failed']) expect(metricValue(text, 'sentinel_trace_spans_total', { outcome })).toBe(0);
    } finally {
      await client.endAsync();
      await daemon.stop();
    }
    expect(receiver.requests.length).toBe(before);
  }, 60_000);
});
