/**
 * The stream table under attack, through the built CLI and a real Mosquitto: one reading from the far
 * future, long ids against the table's byte budget, and a flood of new ids squatting the table while
 * real streams report. Each test prints one JSON line of figures (`ATTACK {...}`).
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PumpSimulator, type FaultPlan } from '../../src/offline/sim/pump.js';
import { waitFor } from '../support/broker.js';
import { metricValue, waitForMetric } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { BROKER_URL, expectUnharmed, type AttackDaemon } from '../support/attack-daemon.js';
import { AttackClients, rssSampler, telemetry } from '../support/clients.js';
import { DEFAULT_MANIFEST, DEFAULT_WARMUP_ROWS, windowPcaModel } from '../support/model.js';
import { sleep } from '../support/proc.js';
import type { Alert } from '../../src/alert/alert.js';

const WINDOW = DEFAULT_MANIFEST.window;
/** Readings before a stream's first scored window: a full window, and the default model's baseline warm-up. */
const LEAD = Math.max(WINDOW - 1, DEFAULT_WARMUP_ROWS);
const MiB = 1024 * 1024;
/** The sentinel container's memory limit in k8s/base/daemonset.yaml. */
const POD_LIMIT = 512 * MiB;

/** A broker this file owns: no queue limit, so a flood reaches the daemon whole rather than cut by the broker. */
let owned: MosquittoProcess;
const run = new AttackClients();
const daemon = run.daemon.bind(run);
const publisher = run.publisher.bind(run);
const alertWatcher = run.alertWatcher.bind(run);
/** Stops the reporting loops a failed test left running. */
const halts: Array<() => void> = [];

beforeAll(async () => {
  owned = await startMosquitto({ persistence: false });
});
afterEach(async ({ task }) => {
  for (const halt of halts.splice(0)) halt();
  await run.cleanup(task.result?.state === 'fail');
});
afterAll(async () => owned?.dispose());

/** Marks a publish's failure as handled (the test still awaits it): a test that fails midway leaves no unhandled rejection. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * A stream reporting every `periodMs` at QoS 1 until stop(): rows stamped `periodMs` apart, the first
 * `prefill` of them sent at once so its window is full from the start.
 */
function reporter(client: MqttClient, topic: string, sim: PumpSimulator, periodMs: number, prefill = 0): { sent(): number; sentAt(row: number): number; stop(): Promise<void> } {
  let running = true;
  const acks: Array<Promise<unknown>> = [];
  const times: number[] = [];
  const send = (): void => {
    acks.push(quiet(client.publishAsync(topic, telemetry(sim), { qos: 1 })));
    times.push(Date.now());
  };
  for (let i = 0; i < prefill; i++) send();
  halts.push(() => (running = false));
  const loop = (async () => {
    while (running) {
      send();
      await sleep(periodMs);
    }
  })();
  return {
    sent: () => times.length,
    sentAt: (row) => times[row] ?? Number.NaN,
    async stop() {
      running = false;
      await loop;
      await Promise.all(acks);
    },
  };
}

/** Polls until at least `n` windows are scored (a stream that keeps reporting goes past any exact count). */
async function waitForScored(d: AttackDaemon, n: number): Promise<void> {
  let scored = 0;
  await waitFor(
    () => {
      void d.metric('sentinel_windows_scored_total').then((v) => (scored = v)).catch(() => {});
      return scored >= n;
    },
    15_000,
    `${n} windows scored`,
  );
}

const rejected = (text: string, reason: string): number => metricValue(text, 'sentinel_readings_rejected_total', { reason });

describe('stream table (items 3, 8, 9)', () => {
  it('one reading stamped now + 23 h does not blind its stream: older readings restart the window (a clock step)', async () => {
    const d = await daemon('clock-step', { ingest: { maxFutureSkewMs: 86_400_000 } });
    const alerts = await alertWatcher(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const topic = `${d.prefix}/sensors/pump-cs/telemetry`;
    await pub.publishAsync(topic, telemetry(new PumpSimulator({ seed: 30 }), Date.now() + 23 * 3_600_000), { qos: 1 });
    await waitForMetric(d.port, 'sentinel_readings_queued_total', 1);
    const rows = LEAD + 41;
    const faults: FaultPlan[] = [{ kind: 'spike', channel: 0, start: LEAD + 21, length: 10 }];
    const sim = new PumpSimulator({ seed: 31, startTs: Date.now() - rows * 1000, periodMs: 1000, faults });
    await Promise.all(Array.from({ length: rows }, () => pub.publishAsync(topic, telemetry(sim), { qos: 1 })));
    // The clock step empties the window but keeps the baseline, which had learned the future reading.
    await waitForMetric(d.port, 'sentinel_windows_scored_total', rows - Math.max(WINDOW - 1, DEFAULT_WARMUP_ROWS - 1), 20_000);
    await waitFor(() => alerts.some((a) => a.alert.type === 'raised'), 15_000, 'raised on pump-cs');
    const text = await waitForMetric(d.port, 'sentinel_clock_steps_total', 1);
    console.log(
      `ATTACK ${JSON.stringify({ test: 'clock-step', clockSteps: metricValue(text, 'sentinel_clock_steps_total'), outOfOrder: rejected(text, 'out_of_order'), windowsScored: metricValue(text, 'sentinel_windows_scored_total'), alerts: alerts.map((a) => `${a.alert.type}:${a.topic}`) })}`,
    );
    expect(rejected(text, 'out_of_order')).toBe(0);
    expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(0);
    expect(metricValue(text, 'sentinel_clock_steps_total')).toBe(1);
    const raised = alerts.find((a) => a.alert.type === 'raised');
    expect(raised?.topic).toBe(`${d.prefix}/alerts/pump-cs`);
    expect(Date.parse(raised?.alert.recordTs ?? '')).toBeLessThanOrEqual(Date.now());
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('12 KB stream ids against window.maxBytes 8 MiB: the byte budget refuses new streams, RSS stays bounded, a known stream is scored', async () => {
    const idBytes = 12_000;
    const budget = 8 * MiB;
    const d = await daemon(
      'id-budget',
      { ingest: { maxTopicBytes: 65_535, maxStreamIdBytes: 16_384 }, window: { maxBytes: budget }, schedule: { sweep: '* * * * * *' } },
      { nodeFlags: ['--max-old-space-size=320'], brokerUrl: owned.url },
    );
    const pub = await publisher(owned.url, d.prefix);
    const known = `${d.prefix}/sensors/pump-known/telemetry`;
    const sim = new PumpSimulator({ seed: 32, startTs: Date.now() - 600_000, periodMs: 1000 });
    await Promise.all(Array.from({ length: LEAD + 1 }, () => pub.publishAsync(known, telemetry(sim), { qos: 1 })));
    await waitForMetric(d.port, 'sentinel_windows_scored_total', 1);
    const baseline = await d.metric('process_resident_memory_bytes');
    const sampler = rssSampler(d);

    const count = 10_000;
    const pad = 'i'.repeat(idBytes - 8);
    const started = Date.now();
    let knownRows = LEAD + 1;
    for (let i = 0; i < count; i += 250) {
      const batch: Array<Promise<unknown>> = [pub.publishAsync(known, telemetry(sim), { qos: 1 })];
      knownRows++;
      const payload = telemetry(new PumpSimulator({ seed: i }), Date.now());
      for (let j = i; j < i + 250 && j < count; j++) batch.push(pub.publishAsync(`${d.prefix}/sensors/${String(j).padStart(8, '0')}${pad}/telemetry`, payload, { qos: 1 }));
      await Promise.all(batch);
    }
    await waitForMetric(d.port, 'sentinel_readings_queued_total', knownRows + count, 30_000);
    const floodMs = Date.now() - started;
    await waitForMetric(d.port, 'sentinel_windows_scored_total', knownRows - LEAD, 15_000);
    await sleep(1_500); // a sweep sets the streams gauge
    const peak = await sampler.stop();
    const text = await d.metrics();
    const active = metricValue(text, 'sentinel_streams_active');
    const limited = rejected(text, 'stream_limit');
    console.log(
      `ATTACK ${JSON.stringify({ test: 'id-byte-budget', ids: count, idBytes, maxBytes: budget, streamsHeld: active, streamLimit: limited, floodMs, rssBaselineMiB: +(baseline / MiB).toFixed(1), rssPeakMiB: +(peak / MiB).toFixed(1), heapUsedMiB: +(metricValue(text, 'nodejs_heap_size_used_bytes') / MiB).toFixed(1) })}`,
    );
    // Every flood id the budget let in is held (none was stale: nothing was evicted); the rest were refused.
    expect(metricValue(text, 'sentinel_streams_evicted_total')).toBe(0);
    expect(limited).toBe(count - (active - 1));
    expect(limited).toBeGreaterThan(count / 2);
    // Each held id costs at least its UTF-16 size in the estimate: the budget caps what the ids can hold.
    expect((active - 1) * idBytes).toBeLessThanOrEqual(budget);
    // The held ids are capped above; the peak also carries the flood's own garbage (10,000 × 12 KB topics
    // passing through before a GC: 234–267 MiB over four CI runs), so it is held to three quarters of the
    // DaemonSet's 512Mi memory limit.
    expect(peak).toBeLessThan(POD_LIMIT * 0.75);
    expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(limited);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('a flood of 20,000 new ids cannot lock out a new sensor or evict a reporting one: stale squatters make room', async () => {
    const staleAfterMs = 2_000;
    // The new sensor's first scored window must raise (see below), so no per-stream baseline may learn its
    // fault first: the default model's data in window-pca-t2q, scored from the first full window.
    const d = await daemon(
      'squat',
      { window: { maxStreams: 2_000, staleAfterMs }, schedule: { sweep: '* * * * * *' }, model: { path: windowPcaModel(), warmupRuns: 1, watch: false } },
      { brokerUrl: owned.url },
    );
    const alerts = await alertWatcher(owned.url, d.prefix);
    const pub = await publisher(owned.url, d.prefix);
    const known = reporter(pub, `${d.prefix}/sensors/pump-known/telemetry`, new PumpSimulator({ seed: 33, startTs: Date.now() - 60_000, periodMs: 200 }), 200, WINDOW);
    await waitForScored(d, 1);

    // 20,000 ids, one reading each, 2,000/s: the table (2,000) is full after a second, and stays full.
    const flood = 20_000;
    const floodAcks: Array<Promise<unknown>> = [];
    const floodStarted = Date.now();
    let legit: ReturnType<typeof reporter> | null = null;
    let legitStarted = 0;
    // Every reading of the new sensor is anomalous: its first scored window raises, so the alert's
    // recordTs tells which reading was the first one the table took.
    const legitSim = new PumpSimulator({ seed: 34, startTs: Date.now() - 60_000, periodMs: 100, faults: [{ kind: 'spike', channel: 0, start: 0, length: 1e6 }] });
    const legitTs0 = legitSim.next().ts;
    let tableFull = false;
    const fullWatch = (async () => {
      while (!tableFull && Date.now() - floodStarted < 5_000) {
        tableFull = (await d.metric('sentinel_readings_rejected_total', { reason: 'stream_limit' }).catch(() => 0)) > 0;
        await sleep(50);
      }
    })();
    for (let i = 0; i < flood; i += 100) {
      const payload = telemetry(new PumpSimulator({ seed: i }), Date.now());
      for (let j = i; j < i + 100; j++) floodAcks.push(quiet(pub.publishAsync(`${d.prefix}/sensors/squat-${j}/telemetry`, payload, { qos: 1 })));
      // The new sensor starts once the table is full and refusing (or after 3 s, and the asserts will say).
      if (legit === null && (tableFull || Date.now() - floodStarted >= 3_000)) {
        legitStarted = Date.now();
        legit = reporter(pub, `${d.prefix}/sensors/pump-new/telemetry`, legitSim, 100);
      }
      await sleep(50);
    }
    await Promise.all(floodAcks);
    await fullWatch;
    const floodMs = Date.now() - floodStarted;
    await waitFor(() => alerts.some((a) => a.alert.streamId === 'pump-new'), 15_000, 'raised on the new sensor');
    const raised = alerts.find((a) => a.alert.streamId === 'pump-new') as { alert: Alert; at: number };
    await (legit as NonNullable<typeof legit>).stop();
    await known.stop();

    const knownSent = known.sent();
    const legitSent = (legit as NonNullable<typeof legit>).sent();
    await waitForMetric(d.port, 'sentinel_readings_queued_total', knownSent + legitSent + flood, 20_000);
    // Legit reading n (from 0) was stamped legitTs0 + (n + 1) * 100 ms; the first one the table took is 19 before the raise.
    const firstTaken = Math.round((Date.parse(raised.alert.recordTs) - legitTs0) / 100) - 1 - (WINDOW - 1);
    const acceptedAfterMs = (legit as NonNullable<typeof legit>).sentAt(firstTaken) - legitStarted;
    // A sweep after the last new stream updates the streams gauge.
    await sleep(1_500);
    let text = await d.metrics();
    let accounting = { floodRefused: 0, legitRefused: 0, expectedScored: 0 };
    const account = (t: string): typeof accounting => {
      // Every stream let in is either held or was evicted to make room: known + new sensor + flood ids.
      const floodTaken = metricValue(t, 'sentinel_streams_active') + metricValue(t, 'sentinel_streams_evicted_total', { reason: 'table_full' }) - 2;
      const floodRefused = flood - floodTaken;
      const legitRefused = rejected(t, 'stream_limit') - floodRefused;
      // Every reading of the known stream is scored (after its first window), and of the new one from when it got in.
      return { floodRefused, legitRefused, expectedScored: knownSent - (WINDOW - 1) + (legitSent - legitRefused - (WINDOW - 1)) };
    };
    await waitFor(
      () => {
        void d.metrics().then((t) => (text = t)).catch(() => {});
        accounting = account(text);
        return metricValue(text, 'sentinel_windows_scored_total') === accounting.expectedScored;
      },
      10_000,
      'every known and admitted reading scored',
    ).catch(() => {});
    console.log(
      `ATTACK ${JSON.stringify({
        test: 'squatting',
        flood,
        floodMs,
        maxStreams: 2000,
        evictedTableFull: metricValue(text, 'sentinel_streams_evicted_total', { reason: 'table_full' }),
        streamLimit: rejected(text, 'stream_limit'),
        ...accounting,
        knownSent,
        legitSent,
        legitRefusedReadings: firstTaken,
        legitAcceptedAfterMs: acceptedAfterMs,
        legitStartedAfterMs: legitStarted - floodStarted,
        legitAlertAfterMs: raised.at - legitStarted,
        windowsScored: metricValue(text, 'sentinel_windows_scored_total'),
      })}`,
    );
    expect(metricValue(text, 'sentinel_streams_evicted_total', { reason: 'table_full' })).toBeGreaterThan(0);
    expect(rejected(text, 'stream_limit')).toBeGreaterThan(0);
    expect(metricValue(text, 'sentinel_streams_evicted_total', { reason: 'idle' })).toBe(0);
    // The only rejections are flood ids and the new sensor's readings before it got in; none of the known stream.
    expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(rejected(text, 'stream_limit'));
    expect(accounting.legitRefused).toBeGreaterThanOrEqual(0);
    expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(accounting.expectedScored);
    // The new sensor got in within staleAfterMs and a few sweeps of starting, and raised soon after.
    expect(firstTaken).toBe(accounting.legitRefused);
    expect(acceptedAfterMs).toBeLessThanOrEqual(staleAfterMs + 3_000);
    expect(raised.at - legitStarted).toBeLessThan(8_000);
    expect(alerts.filter((a) => a.alert.streamId !== 'pump-new')).toEqual([]);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});
