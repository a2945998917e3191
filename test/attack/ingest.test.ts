/**
 * The ingest door under attack, through the built CLI and a real Mosquitto: topics and stream ids too
 * long for the alert topic or for memory, a QoS 1 backlog against the rate limit, and timestamps from
 * the far future. Each test prints one JSON line of figures (`ATTACK {...}`).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PumpSimulator, type FaultPlan } from '../../src/offline/sim/pump.js';
import { waitFor } from '../support/broker.js';
import { runCli, startCli } from '../support/cli.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { attackConfig, BROKER_URL, expectUnharmed, type AttackDaemon } from '../support/attack-daemon.js';
import { AttackClients, rssSampler, telemetry } from '../support/clients.js';
import { DEFAULT_MANIFEST, DEFAULT_WARMUP_ROWS, scoredWindows } from '../support/model.js';

const WINDOW = DEFAULT_MANIFEST.window;
/** Readings before a stream's first scored window: a full window, and the default model's baseline warm-up. */
const LEAD = Math.max(WINDOW - 1, DEFAULT_WARMUP_ROWS);
const scored = (rows: number): number => scoredWindows(DEFAULT_MANIFEST, rows);
const MAX_TOPIC = 65_535;
/** The issue's memory bound for a daemon under `--max-old-space-size=320` (as the image runs it). */
const RSS_LIMIT = 250 * 1024 * 1024;
const MiB = 1024 * 1024;

/** A broker this file owns: no queue limit, so what a test floods it with all reaches the daemon. */
let owned: MosquittoProcess;
const run = new AttackClients();
const daemon = run.daemon.bind(run);
const publisher = run.publisher.bind(run);
const alertWatcher = run.alertWatcher.bind(run);

beforeAll(async () => {
  owned = await startMosquitto({ persistence: false });
});
afterEach(async ({ task }) => run.cleanup(task.result?.state === 'fail'));
afterAll(async () => owned?.dispose());

/** A pump whose rows are stamped `rows` seconds up to now, with a spike the default model raises on. */
function pumpUpToNow(seed: number, rows: number, spikeAt: number): PumpSimulator {
  const faults: FaultPlan[] = [{ kind: 'spike', channel: 0, start: spikeAt, length: 10 }];
  return new PumpSimulator({ seed, startTs: Date.now() - rows * 1000, periodMs: 1000, faults });
}

/** Publishes `rows` readings of `sim` on `topic` at QoS 1 and waits for every PUBACK. */
async function publishRows(client: MqttClient, topic: string, sim: PumpSimulator, rows: number): Promise<void> {
  await Promise.all(Array.from({ length: rows }, () => client.publishAsync(topic, telemetry(sim), { qos: 1 })));
}

const rejected = (text: string, reason: string): number => metricValue(text, 'sentinel_readings_rejected_total', { reason });

describe('topics and stream ids (items 2/3)', () => {
  it('a 65,535-byte topic is rejected topic_too_long before matching: no alert, and valid telemetry still alerts', async () => {
    const d = await daemon('long-topic');
    const alerts = await alertWatcher(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    // The longest topic MQTT allows: the issue's "sensors/<65,517 bytes>/telemetry" under this daemon's prefix.
    const frame = `${d.prefix}/sensors//telemetry`;
    const level = 'L'.repeat(MAX_TOPIC - Buffer.byteLength(frame));
    const longTopic = `${d.prefix}/sensors/${level}/telemetry`;
    expect(Buffer.byteLength(longTopic)).toBe(MAX_TOPIC);
    // A full window with a spike: before the fix this stream was scored and its alert topic overflowed.
    const longRows = LEAD + 6;
    await publishRows(pub, longTopic, pumpUpToNow(1, longRows, LEAD + 1), longRows);
    // Under the 1,024-char test but 1,200 bytes: the limit is in UTF-8 bytes, not characters.
    const euroTopic = `${d.prefix}/sensors/${'€'.repeat(400)}/telemetry`;
    await pub.publishAsync(euroTopic, telemetry(pumpUpToNow(2, 1, 99)), { qos: 1 });
    await waitForMetric(d.port, 'sentinel_readings_rejected_total', longRows + 1, 15_000, { reason: 'topic_too_long' });

    const rows = LEAD + 41;
    await publishRows(pub, `${d.prefix}/sensors/pump-ok/telemetry`, pumpUpToNow(3, rows, LEAD + 21), rows);
    await waitForMetric(d.port, 'sentinel_windows_scored_total', scored(rows), 20_000);
    await waitFor(() => alerts.some((a) => a.alert.type === 'raised'), 15_000, 'raised on pump-ok');
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'long-topic', topicBytes: MAX_TOPIC, levelBytes: level.length, topicTooLong: rejected(text, 'topic_too_long'), queued: metricValue(text, 'sentinel_readings_queued_total'), alerts: alerts.map((a) => `${a.alert.type}:${a.alert.streamId}`) })}`,
    );
    expect(rejected(text, 'topic_too_long')).toBe(longRows + 1);
    expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(rows);
    expect(alerts.length).toBeGreaterThan(0);
    for (const { topic, alert } of alerts) {
      expect(alert.streamId).toBe('pump-ok');
      expect(topic).toBe(`${d.prefix}/alerts/pump-ok`);
    }
    expect(metricValue(text, 'sentinel_alerts_undeliverable_total')).toBe(0);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('stream ids over ingest.maxStreamIdBytes (UTF-8 bytes) or with a control character are bad_stream_id', async () => {
    // A topic name cannot carry a control character through Mosquitto (it drops the publisher), so the
    // one that reaches the daemon is a literal in a stream template.
    const root = `attack-ids-${process.pid}-${Date.now().toString(36)}`;
    const d = await daemon('stream-id', {
      subscriptions: [
        { topic: `${root}/sensors/+/telemetry`, stream: '{1}', format: 'json-values', qos: 1 },
        { topic: `${root}/tagged/+/telemetry`, stream: 'x\u0001{1}', format: 'json-values', qos: 1 },
      ],
    });
    const alerts = await alertWatcher(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const rows = LEAD + 11;
    const tooLong = 'a'.repeat(300);
    const tooManyBytes = '€'.repeat(86); // 86 characters, 258 bytes
    const justFits = '€'.repeat(85); // 255 bytes
    await publishRows(pub, `${root}/sensors/${tooLong}/telemetry`, pumpUpToNow(4, rows, LEAD + 1), rows);
    await publishRows(pub, `${root}/sensors/${tooManyBytes}/telemetry`, pumpUpToNow(5, rows, LEAD + 1), rows);
    await publishRows(pub, `${root}/tagged/pump-1/telemetry`, pumpUpToNow(6, rows, LEAD + 1), rows);
    await waitForMetric(d.port, 'sentinel_readings_rejected_total', 3 * rows, 15_000, { reason: 'bad_stream_id' });
    // The longest id that fits is scored, and its alert goes out on <prefix>/alerts/<id>.
    await publishRows(pub, `${root}/sensors/${justFits}/telemetry`, pumpUpToNow(7, rows, LEAD + 1), rows);
    await waitFor(() => alerts.some((a) => a.alert.type === 'raised'), 15_000, 'raised on the 255-byte id');
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'bad-stream-id', badStreamId: rejected(text, 'bad_stream_id'), queued: metricValue(text, 'sentinel_readings_queued_total'), alertTopicsBytes: alerts.map((a) => Buffer.byteLength(a.topic)) })}`,
    );
    expect(rejected(text, 'bad_stream_id')).toBe(3 * rows);
    expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(rows);
    for (const { topic, alert } of alerts) {
      expect(alert.streamId).toBe(justFits);
      expect(topic).toBe(`${d.prefix}/alerts/${justFits}`);
    }
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('check-config fails fast when <alert.prefix>/<streamId> could exceed the MQTT topic limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-attack-prefix-'));
    const check = async (prefixBytes: number): Promise<{ code: number | null; stderr: string }> => {
      const path = join(dir, `prefix-${prefixBytes}.yaml`);
      const config = attackConfig('prefix', dir, BROKER_URL, { alert: { prefix: 'p'.repeat(prefixBytes), statusPrefix: 'status' } });
      writeFileSync(path, stringify(config));
      return runCli(['check-config', '--config', path]);
    };
    const tooLong = await check(65_400);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/alert\.prefix/);
    expect(tooLong.stderr).toMatch(/maxStreamIdBytes/);
    // The longest prefix that fits with the default 256-byte ids: 65,278 + 1 + 256 = 65,535.
    const fits = await check(MAX_TOPIC - 1 - 256);
    expect(fits.stderr).toBe('');
    expect(fits.code).toBe(0);
    expect((await check(MAX_TOPIC - 256)).code).toBe(2);
  });

  it('8,000 topics of 60 KB under --max-old-space-size=320: all topic_too_long, RSS stays bounded, the daemon lives', async () => {
    const d = await daemon('mem-topics', {}, { nodeFlags: ['--max-old-space-size=320'], brokerUrl: owned.url });
    const baseline = await d.metric('process_resident_memory_bytes');
    const sampler = rssSampler(d);
    const pub = await publisher(owned.url, d.prefix);
    const count = 8_000;
    const pad = 'x'.repeat(60_000);
    const payload = telemetry(pumpUpToNow(8, 1, 99));
    const started = Date.now();
    for (let i = 0; i < count; i += 200) {
      const batch: Array<Promise<unknown>> = [];
      for (let j = i; j < i + 200 && j < count; j++) batch.push(pub.publishAsync(`${d.prefix}/sensors/${j}-${pad}/telemetry`, payload, { qos: 1 }));
      await Promise.all(batch);
    }
    await waitForMetric(d.port, 'sentinel_readings_rejected_total', count, 30_000, { reason: 'topic_too_long' });
    const floodMs = Date.now() - started;
    const peak = await sampler.stop();
    // A known stream is still scored after the flood.
    const rows = LEAD + 5;
    await publishRows(pub, `${d.prefix}/sensors/pump-after/telemetry`, pumpUpToNow(9, rows, 99 + LEAD), rows);
    await waitForMetric(d.port, 'sentinel_windows_scored_total', scored(rows), 15_000);
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'memory-60k-topics', messages: count, topicBytes: Buffer.byteLength(`${d.prefix}/sensors/0-${pad}/telemetry`), floodMs, rssBaselineMiB: +(baseline / MiB).toFixed(1), rssPeakMiB: +(peak / MiB).toFixed(1), heapUsedMiB: +(metricValue(text, 'nodejs_heap_size_used_bytes') / MiB).toFixed(1), streams: metricValue(text, 'sentinel_streams_active') })}`,
    );
    expect(rejected(text, 'topic_too_long')).toBe(count);
    expect(peak).toBeLessThan(RSS_LIMIT);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});

describe('oversized packets', () => {
  it('publishes of 8 MiB never reach the daemon (MQTT 5 Maximum Packet Size): the broker drops them, 200 KB ones are oversized', async () => {
    const d = await daemon('huge-packets', {}, { nodeFlags: ['--max-old-space-size=320'], brokerUrl: owned.url });
    const baseline = await d.metric('process_resident_memory_bytes');
    const sampler = rssSampler(d);
    const pub = await publisher(owned.url, d.prefix);
    const topic = `${d.prefix}/sensors/pump-big/telemetry`;
    // Valid JSON padded past any sane size: only the packet size limit keeps it out of the daemon.
    const huge = JSON.stringify({ ts: Date.now(), values: { flow: 1 }, pad: 'x'.repeat(8 * MiB) });
    const large = JSON.stringify({ ts: Date.now(), values: { flow: 1 }, pad: 'x'.repeat(200_000) });
    const hugeCount = 12;
    const largeCount = 12;
    for (let i = 0; i < hugeCount; i++) {
      await pub.publishAsync(topic, huge, { qos: 1 });
      if (i < largeCount) await pub.publishAsync(topic, large, { qos: 1 });
    }
    await waitForMetric(d.port, 'sentinel_readings_rejected_total', largeCount, 15_000, { reason: 'oversized' });
    // Valid telemetry after the flood is scored: intake never stalled.
    const rows = LEAD + 5;
    await publishRows(pub, `${d.prefix}/sensors/pump-after/telemetry`, pumpUpToNow(10, rows, 99 + LEAD), rows);
    await waitForMetric(d.port, 'sentinel_windows_scored_total', scored(rows), 15_000);
    const peak = await sampler.stop();
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'huge-packets', hugeBytes: huge.length, hugeSent: hugeCount, largeSent: largeCount, oversized: rejected(text, 'oversized'), received: metricValue(text, 'sentinel_messages_received_total'), rssBaselineMiB: +(baseline / MiB).toFixed(1), rssPeakMiB: +(peak / MiB).toFixed(1) })}`,
    );
    // Had the broker sent the 8 MiB packets, they would be counted here too (and held in memory whole).
    expect(rejected(text, 'oversized')).toBe(largeCount);
    expect(peak - baseline).toBeLessThan(64 * MiB);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});

describe('rate limit against a QoS 1 backlog (item 5)', () => {
  it('a persistent session\'s backlog of 15,000 QoS 1 readings is all taken: acknowledgements wait, none rejected', async () => {
    const first = await daemon('rate-backlog', {}, { brokerUrl: owned.url });
    const pub = await publisher(owned.url, first.prefix);
    // One reading through the first run proves its subscription is in the session before it stops.
    await pub.publishAsync(`${first.prefix}/sensors/probe/telemetry`, telemetry(pumpUpToNow(10, 1, 99)), { qos: 1 });
    await waitForMetric(first.port, 'sentinel_readings_queued_total', 1);
    expect(await first.stop()).toBe(0);

    // While it is down: 5 streams × 3,000 readings, 1 s apart per stream, starting 4 h ago. One stream
    // after another, so each arrives far faster than its 1,000/s and has to wait.
    const streams = 5;
    const rows = 3_000;
    const startTs = Date.now() - 4 * 3_600_000;
    const acks: Array<Promise<unknown>> = [];
    for (let s = 0; s < streams; s++) {
      const sim = new PumpSimulator({ seed: 20 + s, startTs, periodMs: 1000 });
      for (let r = 0; r < rows; r++) acks.push(pub.publishAsync(`${first.prefix}/sensors/pump-${s}/telemetry`, telemetry(sim), { qos: 1 }));
    }
    await Promise.all(acks);

    const started = Date.now();
    const d = await restart(first);
    const total = streams * rows;
    await waitForMetric(d.port, 'sentinel_readings_queued_total', total, 40_000);
    const drainMs = Date.now() - started;
    await waitForMetric(d.port, 'sentinel_windows_scored_total', streams * scored(rows), 15_000);
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'qos1-backlog-rate-limit', readings: total, queued: metricValue(text, 'sentinel_readings_queued_total'), rateLimited: rejected(text, 'rate_limited'), rateLimitWaits: metricValue(text, 'sentinel_rate_limit_waits_total'), windowsScored: metricValue(text, 'sentinel_windows_scored_total'), drainMs })}`,
    );
    expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(total);
    expect(rejected(text, 'rate_limited')).toBe(0);
    expect(metricValue(text, 'sentinel_rate_limit_waits_total')).toBeGreaterThan(0);
    expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(0);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});

/** Runs the daemon again on the same config (same client id: same persistent session). */
async function restart(d: AttackDaemon): Promise<AttackDaemon> {
  const cli = startCli(['run', '--config', d.configPath]);
  await waitFor(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 30_000, 'sentinel ready');
  const ready = cli.logs().find((l) => l.msg === 'sentinel ready');
  if (!ready) throw new Error(`daemon did not start again: ${cli.stderr()}${cli.stdout()}`);
  const port = ready.httpPort as number;
  const metrics = () => scrape(port);
  const again: AttackDaemon = {
    ...d,
    cli,
    port,
    metrics,
    metric: async (name, labels = {}) => metricValue(await metrics(), name, labels),
    stop: async () => {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
      return cli.exited;
    },
  };
  return run.track(again);
}

describe('timestamps from the far future (item 8)', () => {
  it('by default a reading stamped now + 23 h is bad_timestamp and does not blind its stream', async () => {
    const d = await daemon('ts-default');
    const alerts = await alertWatcher(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const topic = `${d.prefix}/sensors/pump-ts/telemetry`;
    const rows = LEAD + 41;
    const sim = pumpUpToNow(11, rows, LEAD + 21);
    await pub.publishAsync(topic, telemetry(new PumpSimulator({ seed: 12 }), Date.now() + 23 * 3_600_000), { qos: 1 });
    await publishRows(pub, topic, sim, rows);
    await waitForMetric(d.port, 'sentinel_windows_scored_total', scored(rows), 20_000);
    await waitFor(() => alerts.some((a) => a.alert.type === 'raised'), 15_000, 'raised');
    const text = await d.metrics();
    expect(rejected(text, 'bad_timestamp')).toBe(1);
    expect(rejected(text, 'out_of_order')).toBe(0);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('a ts beyond the Date range is bad_timestamp even with maxFutureSkewMs at its maximum: no crash', async () => {
    const d = await daemon('ts-max', { ingest: { maxFutureSkewMs: 8.64e15 } });
    const alerts = await alertWatcher(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const topic = `${d.prefix}/sensors/pump-far/telemetry`;
    const rows = LEAD + 41;
    const sim = pumpUpToNow(13, rows, LEAD);
    await publishRows(pub, topic, sim, LEAD);
    // Each would complete the window, spiked: before the fix the first one was taken (it is within
    // now + 8.64e15) and building its alert threw RangeError (Invalid time value), ending the process.
    const beyond = [8.64e15 + 1e9, 9e15];
    const wild = JSON.stringify({ vibration: 1e4, current: 1e4, pressure: 1e4, temperature: 1e4, flow: 1e4 });
    for (const ts of beyond) await pub.publishAsync(topic, `{"ts":${ts},"values":${wild}}`, { qos: 1 });
    await waitForMetric(d.port, 'sentinel_readings_rejected_total', beyond.length, 15_000, { reason: 'bad_timestamp' });
    // The stream goes on as if they had never come: its own spike is scored and raised.
    await publishRows(pub, topic, sim, rows - LEAD);
    await waitForMetric(d.port, 'sentinel_windows_scored_total', scored(rows), 20_000);
    await waitFor(() => alerts.some((a) => a.alert.type === 'raised'), 15_000, 'raised');
    const text = await d.metrics();
    console.log(
      `ATTACK ${JSON.stringify({ test: 'ts-beyond-date-range', badTimestamp: rejected(text, 'bad_timestamp'), outOfOrder: rejected(text, 'out_of_order'), alerts: alerts.map((a) => `${a.alert.type}:${a.alert.recordTs}`) })}`,
    );
    expect(rejected(text, 'bad_timestamp')).toBe(beyond.length);
    expect(rejected(text, 'out_of_order')).toBe(0);
    for (const { alert } of alerts) expect(Date.parse(alert.recordTs)).toBeLessThanOrEqual(Date.now());
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});
