/**
 * Alerts under attack, through the built CLI and a real Mosquitto: readings at the edge of float32 give
 * finite, schema-valid alerts that survive the outbox journal, and an alert on a stream that goes silent
 * is closed with `resolved` (reason "stale") instead of staying open forever.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, SATURATED, type Alert } from '../../src/alert/alert.js';
import { loadModel, type Scorer } from '../../src/model/scorer.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { WindowStore } from '../../src/window/window-store.js';
import { waitFor } from '../support/broker.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_MODEL, DEFAULT_WARMUP_ROWS } from '../support/model.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { BROKER_URL, expectUnharmed, startAttackDaemon, type AttackDaemon } from '../support/attack-daemon.js';

const WINDOW = DEFAULT_MANIFEST.window;
const CHANNELS = DEFAULT_MANIFEST.channels;
/** Readings before a stream's first scored window: a full window, and the default model's baseline warm-up. */
const LEAD = Math.max(WINDOW - 1, DEFAULT_WARMUP_ROWS);

let scorer: Scorer;
const daemons: AttackDaemon[] = [];
const processes: CliProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  // The same ONNX model the daemon runs, in this process: what each window must score.
  scorer = await loadModel(DEFAULT_MODEL, { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 0, maxBatch: 8 });
});
afterAll(async () => scorer?.release());
afterEach(async () => {
  for (const d of daemons.splice(0)) if (d.cli.child.exitCode === null && d.cli.child.signalCode === null) d.cli.child.kill('SIGKILL');
  for (const p of processes.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

async function daemon(name: string, overrides: Record<string, unknown>, brokerUrl?: string): Promise<AttackDaemon> {
  const d = await startAttackDaemon(name, { ingest: { maxReadingsPerSecondPerStream: 0 }, ...overrides }, brokerUrl === undefined ? {} : { brokerUrl });
  daemons.push(d);
  return d;
}

/** A client subscribed to the daemon's alerts; alerts that fail alertSchema are kept apart, not thrown in the handler. */
async function watchAlerts(url: string, prefix: string, persistent = false): Promise<{ alerts: Alert[]; invalid: string[]; topics: string[] }> {
  const client = await mqtt.connectAsync(url, {
    clientId: `watch-${prefix}`,
    protocolVersion: 5,
    clean: !persistent,
    reconnectPeriod: 100,
    ...(persistent ? { properties: { sessionExpiryInterval: 600 } } : {}),
  });
  clients.push(client);
  const seen = { alerts: [] as Alert[], invalid: [] as string[], topics: [] as string[] };
  client.on('message', (topic, payload) => {
    if (!topic.startsWith(`${prefix}/alerts/`)) return;
    const parsed = alertSchema.safeParse(JSON.parse(payload.toString()));
    if (parsed.success) {
      seen.alerts.push(parsed.data);
      seen.topics.push(topic);
    } else seen.invalid.push(payload.toString());
  });
  await client.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
  return seen;
}

async function publisher(url: string, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: `pub-${id}`, protocolVersion: 5, clean: true, reconnectPeriod: 100 });
  clients.push(client);
  return client;
}

interface Row {
  ts: number;
  values: number[];
}

const payload = (row: Row): string => JSON.stringify({ ts: row.ts, values: Object.fromEntries(CHANNELS.map((c, i) => [c, row.values[i]])) });

/** `count` normal rows of a seeded pump, stamped from ten minutes ago on (never ahead of the wall clock). */
function normalRows(seed: number, count: number, startTs = Date.now() - 600_000): Row[] {
  const sim = new PumpSimulator({ seed, startTs });
  return Array.from({ length: count }, () => {
    const r = sim.next();
    return { ts: r.ts, values: r.values };
  });
}

async function publishRows(client: MqttClient, topic: string, rows: Row[]): Promise<void> {
  for (const row of rows) await client.publishAsync(topic, payload(row), { qos: 1 });
}

/**
 * What the model scores each scored window of one stream's `rows`: the rows go through a window store with
 * the model's baseline rule, as in the daemon, and the baseline is held from the first window at or over
 * the raise threshold on (the alert it raises stays open for the rest of `rows` in these plans).
 */
async function windowScores(rows: Row[]): Promise<number[]> {
  const m = scorer.manifest;
  const store = new WindowStore({ window: m.window, channels: CHANNELS.length, maxStreams: 1, staleAfterMs: Number.POSITIVE_INFINITY, idleTtlMs: Number.POSITIVE_INFINITY, normalization: m.normalization, baseline: m.baseline });
  const input = new Float32Array(WINDOW * CHANNELS.length);
  const scores: number[] = [];
  for (const row of rows) {
    const outcome = store.push({ streamId: 'oracle', ts: row.ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values: Float32Array.from(row.values) }, 0);
    if (typeof outcome !== 'number') continue;
    store.copyWindow(outcome, input, 0);
    const score = (await scorer.score(input, 1)).scores[0] as number;
    if (score >= m.policy.raiseThreshold) store.holdBaseline('oracle', true);
    scores.push(score);
  }
  return scores;
}

/** Within float32 rounding of `expected` (the daemon may score a window in a batch of another size). */
function expectNear(actual: number | undefined, expected: number, what = 'score'): void {
  expect(actual, what).toBeDefined();
  expect(Math.abs((actual as number) - expected), `${what} ${actual} vs ${expected}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));
}

const reported = (score: number): number => (Number.isFinite(score) ? score : score === Number.NEGATIVE_INFINITY ? -SATURATED : SATURATED);

function expectFiniteAlert(alert: Alert): void {
  expect(Number.isFinite(alert.score)).toBe(true);
  expect(Math.abs(alert.score)).toBeLessThanOrEqual(SATURATED);
  for (const c of alert.topChannels) {
    expect(Number.isFinite(c.contribution), `contribution of ${c.channel}`).toBe(true);
    expect(Math.abs(c.contribution)).toBeLessThanOrEqual(SATURATED);
  }
  if (alert.peakScore !== undefined) expect(Number.isFinite(alert.peakScore)).toBe(true);
}

/** Per stream: normal rows up to its first scored window, then one reading with an extreme (finite float32) value. */
const EXTREMES = [
  { stream: 'e30', channel: 0, value: 1e30 },
  { stream: 'e38', channel: 2, value: 3.4e38 },
  { stream: 'e20', channel: 4, value: 1e20 },
  { stream: 'neg38', channel: 1, value: -3.4e38 },
];

function extremeRows(seed: number, channel: number, value: number): Row[] {
  const rows = normalRows(seed, LEAD + 2);
  const last = rows[LEAD + 1] as Row;
  last.values = last.values.map((v, c) => (c === channel ? value : v));
  return rows;
}

describe('extreme values (finite in float32)', () => {
  it('a window holding 1e30, ±3.4e38 or 1e20 raises a finite, schema-valid alert; beyond float32 stays non_finite', async () => {
    const d = await daemon('extreme', {});
    const seen = await watchAlerts(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const plans = EXTREMES.map((e, i) => ({ ...e, rows: extremeRows(60 + i, e.channel, e.value) }));
    const expected: number[][] = [];
    for (const p of plans) expected.push(await windowScores(p.rows));
    for (const p of plans) await publishRows(pub, `${d.prefix}/sensors/${p.stream}/telemetry`, p.rows);
    // Beyond float32 (Infinity in a Float32Array): still refused at the door.
    const beyond = normalRows(70, 2).map((r, i) => ({ ts: r.ts, values: r.values.map((v, c) => (c === 0 ? [3.5e38, -1e39][i] as number : v)) }));
    await publishRows(pub, `${d.prefix}/sensors/beyond/telemetry`, beyond);

    const windows = plans.length * 2;
    const text = await waitForMetric(d.port, 'sentinel_windows_scored_total', windows, 20_000);
    await waitFor(() => seen.alerts.length + seen.invalid.length >= plans.length, 15_000, 'one alert per extreme stream');
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(seen.invalid, 'alerts that fail alertSchema').toEqual([]);
    expect(seen.alerts.map((a) => `${a.type}:${a.streamId}`).sort()).toEqual(plans.map((p) => `raised:${p.stream}`).sort());
    const saturated = expected.flat().filter((s) => !Number.isFinite(s)).length;
    for (const [i, p] of plans.entries()) {
      const alert = seen.alerts.find((a) => a.streamId === p.stream) as Alert;
      const [normal, extreme] = expected[i] as [number, number];
      expect(Number.isFinite(normal)).toBe(true);
      expectFiniteAlert(alert);
      // The score the model gave the window, or the largest float32 when that overflowed.
      expectNear(alert.score, reported(extreme), p.stream);
      expect(alert.recordTs).toBe(new Date((p.rows[LEAD + 1] as Row).ts).toISOString());
    }
    expect(saturated, 'the plan makes at least one score overflow').toBeGreaterThan(0);
    expect(metricValue(text, 'sentinel_scores_saturated_total')).toBe(saturated);
    expect(metricValue(text, 'sentinel_readings_rejected_total', { reason: 'non_finite' })).toBe(beyond.length);
    expect(metricValue(text, 'sentinel_alerts_total', { type: 'raised' })).toBe(plans.length);
    console.info(
      `ATTACK extreme ${JSON.stringify({ scores: Object.fromEntries(plans.map((p, i) => [p.stream, expected[i]?.[1]])), saturated, alerts: seen.alerts.map((a) => ({ stream: a.streamId, score: a.score, top: a.topChannels[0] })) })}`,
    );
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });

  it('alerts with saturated scores survive the outbox journal: replayed after a restart with no line skipped', async () => {
    const broker: MosquittoProcess = await startMosquitto({ autosaveIntervalSeconds: 1 });
    try {
      // A long batch delay makes the extreme windows' decisions fall into the outage.
      const d = await daemon('journal', { batch: { maxSize: 1024, maxDelayMs: 5000 } }, broker.url);
      const seen = await watchAlerts(broker.url, d.prefix, true);
      const pub = await publisher(broker.url, d.prefix);
      const plans = EXTREMES.map((e, i) => ({ ...e, rows: extremeRows(80 + i, e.channel, e.value) }));
      // First every stream's normal rows up to its first window, scored and decided (nothing to alert) ...
      for (const p of plans) await publishRows(pub, `${d.prefix}/sensors/${p.stream}/telemetry`, p.rows.slice(0, LEAD + 1));
      await waitForMetric(d.port, 'sentinel_windows_scored_total', plans.length, 20_000);
      // ... then the extreme readings, taken in, and the broker goes away before their batch runs.
      for (const p of plans) await publishRows(pub, `${d.prefix}/sensors/${p.stream}/telemetry`, p.rows.slice(LEAD + 1));
      await waitForMetric(d.port, 'sentinel_readings_queued_total', plans.length * (LEAD + 2), 10_000);
      await broker.save();
      await broker.stop();
      const decidedBeforeOutage = d.cli.logs().filter((l) => String(l.msg).startsWith('alert ')).length;
      expect(decidedBeforeOutage, 'the extreme windows were decided before the broker stopped (raise batch.maxDelayMs)').toBe(0);
      await waitFor(() => d.cli.logs().filter((l) => l.msg === 'alert raised').length >= plans.length, 15_000, 'alerts decided during the outage');
      await waitForMetric(d.port, 'sentinel_outbox_pending', plans.length, 10_000);
      expect(await d.stop()).toBe(0);

      // The journal the daemon leaves behind: every line is an alert the schema accepts, with a finite score.
      const lines = readFileSync(d.outboxPath, 'utf8').split('\n').filter((l) => l.length > 0);
      const journaled = lines.map((l) => JSON.parse(l) as { add?: unknown; done?: string });
      expect(journaled.every((j) => j.add !== undefined), 'only undelivered alerts in the journal').toBe(true);
      const pending = journaled.map((j) => alertSchema.parse(j.add));
      expect(pending.map((a) => a.streamId).sort()).toEqual(plans.map((p) => p.stream).sort());
      for (const alert of pending) expectFiniteAlert(alert);
      expect(pending.some((a) => a.score === SATURATED), 'a saturated score is journaled').toBe(true);
      expect(seen.alerts).toHaveLength(0);

      await broker.restart();
      const second = startCli(['run', '--config', d.configPath]);
      processes.push(second);
      await waitFor(() => second.logs().some((l) => l.msg === 'sentinel ready') || second.child.exitCode !== null, 30_000, 'second run ready');
      const ready = second.logs().find((l) => l.msg === 'sentinel ready');
      if (!ready) throw new Error(`second run did not start: ${second.stderr()}`);
      const replay = second.logs().find((l) => l.msg === 'outbox holds undelivered alerts: replaying them first');
      expect(replay).toMatchObject({ pending: plans.length, skippedLines: 0 });
      await waitFor(() => seen.alerts.length >= plans.length, 15_000, 'replayed alerts');
      expect(seen.invalid).toEqual([]);
      expect(seen.alerts.map((a) => a.eventId).sort()).toEqual(pending.map((a) => a.eventId).sort());
      for (const alert of seen.alerts) expectFiniteAlert(alert);
      const port = ready.httpPort as number;
      await waitForMetric(port, 'sentinel_outbox_pending', 0, 15_000);
      expect(metricValue(await scrape(port), 'sentinel_internal_errors_total')).toBe(0);
      console.info(`ATTACK journal ${JSON.stringify({ journaled: pending.length, replayed: seen.alerts.length, skippedLines: replay?.skippedLines, scores: pending.map((a) => a.score) })}`);
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
      expect(second.stderr()).toBe('');
    } finally {
      await broker.dispose();
    }
  });
});

describe('an open alert on a stream that goes silent', () => {
  it('is resolved with reason "stale" by the sweep; a resolution by scores says reason "score"; the stream restarts fresh', async () => {
    const d = await daemon('stale', { window: { staleAfterMs: 2000 }, schedule: { sweep: '* * * * * *' } });
    const seen = await watchAlerts(BROKER_URL, d.prefix);
    const pub = await publisher(BROKER_URL, d.prefix);
    const topic = (stream: string): string => `${d.prefix}/sensors/${stream}/telemetry`;

    // "silent": rows up to its first scored window, a spike that raises, a row that offsets it (a lower last score), then nothing.
    const silent = normalRows(90, LEAD + 3);
    (silent[LEAD + 1] as Row).values[0] = 500;
    (silent[LEAD + 2] as Row).values[0] = -450;
    // "recovers": a spike, then enough normal rows for resolveAfter (30) windows below the threshold.
    const recovers = normalRows(91, LEAD + 2 + WINDOW + 35);
    (recovers[LEAD + 1] as Row).values[3] = 900;
    const silentScores = await windowScores(silent);
    const recoversScores = await windowScores(recovers);
    await publishRows(pub, topic('recovers'), recovers);
    await publishRows(pub, topic('silent'), silent);

    await waitFor(() => seen.alerts.filter((a) => a.type === 'resolved').length >= 2, 20_000, 'both resolutions');
    const byScore = seen.alerts.find((a) => a.streamId === 'recovers' && a.type === 'resolved') as Alert;
    const stale = seen.alerts.find((a) => a.streamId === 'silent' && a.type === 'resolved') as Alert;
    const raised = seen.alerts.find((a) => a.streamId === 'silent' && a.type === 'raised') as Alert;
    expect(seen.invalid).toEqual([]);
    expect(byScore.reason).toBe('score');
    expectNear(byScore.peakScore, Math.max(...recoversScores), 'peak of the recovered stream');

    // The stale resolution: the peak of the episode, the last score, no channels (nothing was scored).
    const [, spike, last] = silentScores as [number, number, number];
    expect(last, 'the plan gives a last score below the peak').toBeLessThan(spike);
    expect(stale).toMatchObject({ type: 'resolved', reason: 'stale', streamId: 'silent', topChannels: [] });
    expect(seen.topics[seen.alerts.indexOf(stale)]).toBe(`${d.prefix}/alerts/silent`);
    expectNear(raised.score, spike, 'raised');
    expectNear(stale.score, last, 'last score');
    expectNear(stale.peakScore, spike, 'peak');
    expect(stale.recordTs).toBe(new Date((silent.at(-1) as Row).ts).toISOString());
    expect(seen.alerts.indexOf(stale)).toBeGreaterThan(seen.alerts.indexOf(raised));

    await waitForMetric(d.port, 'sentinel_streams_stale', 2, 15_000);
    let text = await waitForMetric(d.port, 'sentinel_alerts_active', 0, 10_000);
    // The recovered stream went stale too, with no alert open: no second resolution for it.
    expect(seen.alerts.filter((a) => a.streamId === 'recovers').map((a) => a.type)).toEqual(['raised', 'resolved']);
    expect(seen.alerts.filter((a) => a.streamId === 'silent').map((a) => a.type)).toEqual(['raised', 'resolved']);
    expect(metricValue(text, 'sentinel_alerts_total', { type: 'resolved' })).toBe(2);
    expect(metricValue(text, 'sentinel_streams_went_stale_total')).toBe(2);

    // Speaking again: a fresh window (19 rows fill it, the 20th is scored), the old spike forgotten.
    const scoredBefore = metricValue(text, 'sentinel_windows_scored_total');
    const again = normalRows(92, WINDOW, (silent.at(-1) as Row).ts + 1000);
    await publishRows(pub, topic('silent'), again.slice(0, WINDOW - 1));
    await waitForMetric(d.port, 'sentinel_readings_queued_total', recovers.length + silent.length + WINDOW - 1, 10_000);
    await publishRows(pub, topic('silent'), again.slice(WINDOW - 1));
    text = await waitForMetric(d.port, 'sentinel_windows_scored_total', scoredBefore + 1, 10_000);
    expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(scoredBefore + 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen.alerts.filter((a) => a.streamId === 'silent')).toHaveLength(2);
    console.info(
      `ATTACK stale ${JSON.stringify({ raised: raised.score, staleScore: stale.score, stalePeak: stale.peakScore, byScorePeak: byScore.peakScore, resolvedAfterSilenceMs: Date.parse(stale.detectedAt) - Date.parse(raised.detectedAt) })}`,
    );
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
  });
});
