import { sparkplugRejectReasons } from '../../src/ingest/sparkplug/host.js';
import { sparkplugCountedEvents } from '../../src/ingest/sparkplug/sparkplug-ingest.js';
import { traceSpanOutcomes } from '../../src/observe/metrics.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusSchema, type Status } from '../../src/alert/alert.js';
import { validateConfig } from '../../src/config/load.js';
import { Daemon, internalStages } from '../../src/daemon.js';
import { rejectReasons } from '../../src/ingest/reading.js';
import { createLogger } from '../../src/observe/log.js';
import { connectClient, startTestBroker, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { getText } from '../support/http.js';
import { scrape } from '../support/metrics.js';
import { DEFAULT_MODEL } from '../support/model.js';

const packageVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const onnxruntimeVersion = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;

let broker: TestBroker;
let daemon: Daemon;
let prefix: string;
let text: string;
const statuses: Status[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  prefix = uniquePrefix('fresh');
  const watcher = await connectClient(broker, `fresh-watch-${process.pid}`);
  watcher.on('message', (topic, message) => {
    if (topic === `${prefix}/status/fresh-node`) statuses.push(statusSchema.parse(JSON.parse(message.toString())));
  });
  await watcher.subscribeAsync(`${prefix}/status/#`, { qos: 1 });
  daemon = new Daemon(
    validateConfig({
      outbox: { path: join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'outbox.jsonl') },
      nodeName: 'fresh-node',
      broker: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `sentinel-${prefix.replace(/\//g, '-')}` },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      http: { host: '127.0.0.1', port: 0 },
      model: { path: DEFAULT_MODEL, warmupRuns: 1 },
    }),
    createLogger('silent'),
  );
  await daemon.start();
  await waitFor(() => statuses.length > 0 && daemon.readiness().ready, 10_000, 'status message and ready');
  await watcher.endAsync();
  text = await scrape(daemon.httpPort);
}, 30_000);
afterAll(async () => {
  await daemon?.stop();
  await broker?.stop();
});

/** The samples of `family` in the scrape, as label text → value. */
function samples(family: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] === family) found.set(m[2] ?? '', Number(m[3]));
  }
  return found;
}

describe('a freshly started daemon, before any telemetry', () => {
  /** Every labelled counter and each label set it can take, as the README documents them. */
  const documented = (): Record<string, readonly string[]> => {
    const one = (label: string, values: readonly string[]): string[] => values.map((v) => `${label}="${v}"`);
    const perModel = (label?: string, values: readonly string[] = []): string[] =>
      label === undefined ? ['model="default"'] : values.map((v) => `model="default",${label}="${v}"`);
    return {
      sentinel_messages_received_total: one('subscription', [`${prefix}/sensors/+/telemetry`, 'none']),
      sentinel_readings_rejected_total: one('reason', rejectReasons),
      sentinel_readings_dropped_total: one('reason', ['queue_full_drop_oldest', 'queue_full_drop_newest', 'shutdown']),
      sentinel_alerts_undeliverable_total: one('reason', ['topic_too_long', 'invalid_topic', 'publish_error']),
      sentinel_internal_errors_total: one('stage', internalStages),
      sentinel_http_rejected_total: one('reason', ['connection_limit', 'client_limit', 'bad_request', 'timeout']),
      // One series per model (the model's name in the config): here the one default model.
      sentinel_streams_evicted_total: perModel('reason', ['idle', 'table_full']),
      sentinel_alerts_total: perModel('type', ['raised', 'resolved']),
      sentinel_model_swaps_total: perModel('result', ['swapped', 'refused', 'incomplete']),
      sentinel_readings_queued_total: perModel(),
      sentinel_backpressure_waits_total: perModel(),
      sentinel_streams_went_stale_total: perModel(),
      sentinel_clock_steps_total: perModel(),
      sentinel_windows_scored_total: perModel(),
      sentinel_windows_failed_total: perModel(),
      sentinel_scores_saturated_total: perModel(),
      sentinel_shadow_windows_scored_total: perModel(),
      sentinel_shadow_windows_failed_total: perModel(),
      sentinel_shadow_alerts_total: perModel('type', ['raised', 'resolved']),
      sentinel_shadow_scores_total: perModel('outcome', ['agree', 'live_only', 'shadow_only']),
      sentinel_shadow_decisions_total: perModel('outcome', ['agree', 'live_only', 'shadow_only']),
      sentinel_drift_events_total: perModel('measure', ['drift', 'quality']),
      // Exported whether or not the Sparkplug host is enabled, like every counter.
      sentinel_sparkplug_rejected_total: one('reason', sparkplugRejectReasons),
      sentinel_sparkplug_events_total: one('event', sparkplugCountedEvents),
      sentinel_trace_spans_total: one('outcome', traceSpanOutcomes),
    };
  };

  it('exports every labelled sentinel_ counter with each of its label values at 0', () => {
    // A labelled counter added to SentinelMetrics must be listed above (and initialised) too.
    const labelled = daemon.metrics.registry
      .getMetricsAsArray()
      .filter((m) => m.name.startsWith('sentinel_') && ((m as { labelNames?: readonly string[] }).labelNames?.length ?? 0) > 0 && text.includes(`# TYPE ${m.name} counter`))
      .map((m) => m.name);
    expect(labelled.sort()).toEqual(Object.keys(documented()).sort());
    for (const [family, labels] of Object.entries(documented())) {
      expect(samples(family), family).toEqual(new Map(labels.map((l) => [l, 0])));
    }
  });

  it('exports sentinel_build_info with the package version, the revision and the onnxruntime-node version', () => {
    const info = samples('sentinel_build_info');
    // No dist/REVISION next to src/: a build that was given no revision says "unknown".
    expect(info).toEqual(new Map([[`version="${packageVersion}",revision="unknown",onnxruntime="${onnxruntimeVersion}"`, 1]]));
    expect(onnxruntimeVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('names its version in /readyz and in the retained status message', async () => {
    const { status, body } = await getText(daemon.httpPort, '/readyz');
    expect(status).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ version: packageVersion });
    expect(statuses[0]).toMatchObject({ state: 'online', version: packageVersion, nodeName: 'fresh-node' });
  });
});

describe('the stage lifecycle', () => {
  it('runs its stages from the outputs back, so they stop from intake forward', () => {
    expect(daemon.stageNames).toEqual(['probes', 'model:default', 'broker', 'alerts', 'pipeline:default', 'ingest', 'model-watcher:default', 'candidate-watcher:default', 'scheduler']);
  });

  it('/startupz is 200 with the model loaded while the broker is unreachable; /readyz says why it is not ready', async () => {
    const { createServer } = await import('node:net');
    // A port nothing listens on: taken, then released.
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const offline = new Daemon(
      validateConfig({
        outbox: { path: join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'outbox.jsonl') },
        nodeName: 'uplink-down',
        broker: { url: `mqtt://127.0.0.1:${closedPort}`, clientId: 'sentinel-uplink-down', reconnectMinMs: 200, reconnectMaxMs: 400 },
        subscriptions: [{ topic: 'sensors/+/telemetry', format: 'json-values', qos: 1 }],
        http: { host: '127.0.0.1', port: 0 },
        model: { path: DEFAULT_MODEL, warmupRuns: 1 },
      }),
      createLogger('silent'),
    );
    try {
      await offline.start();
      const startup = await getText(offline.httpPort, '/startupz');
      expect(startup.status).toBe(200);
      expect(JSON.parse(startup.body)).toMatchObject({ started: true, model: { name: expect.any(String), warmedUp: true } });
      const ready = await getText(offline.httpPort, '/readyz');
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({ ready: false, broker: 'disconnected', subscriptions: 'pending' });
      expect((await getText(offline.httpPort, '/healthz')).status).toBe(200);
    } finally {
      expect(await offline.stop()).toBe(true);
    }
  });
});
