/**
 * Fault test: zero-downtime model swap through a real Mosquitto. A new model found by the folder
 * watcher or the cron poll takes over mid-stream with no window dropped or scored twice and /readyz
 * at 200 throughout; corrupt, incompatible and half-written models are refused or retried while the
 * old one keeps serving; 200 swaps leave RSS flat.
 */
import { appendFileSync, copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestPathFor } from '../../src/model/manifest.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { startCapturedDaemon, type CapturedDaemon } from '../support/captured-daemon.js';
import { collector, corruptModel, placeModel, settledRssMb, SteadyStream, trainPumpModel, type ModelFiles } from '../support/swap.js';

let broker: MosquittoProcess;
let publisher: MqttClient;
let work: string;
let modelA: ModelFiles;
let modelB: ModelFiles;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `swap-pub-${process.pid}`, reconnectPeriod: 0 });
  work = mkdtempSync(join(tmpdir(), 'sentinel-swap-'));
  modelA = trainPumpModel(101, { name: 'pump-a' });
  modelB = trainPumpModel(202, { name: 'pump-b' });
});
afterAll(async () => {
  await publisher?.endAsync();
  await broker?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh model folder serving `initial` as current.onnx. */
function modelDir(initial: ModelFiles): string {
  const dir = mkdtempSync(join(work, 'models-'));
  const path = join(dir, 'current.onnx');
  placeModel(path, initial);
  return path;
}

async function swapDaemon(name: string, modelPath: string, model: { watch: boolean }, schedule: Record<string, string> = {}) {
  const prefix = uniquePrefix(name);
  const daemon = await startCapturedDaemon(name, {
    broker: { url: broker.url, protocolVersion: 5 },
    subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
    alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
    model: { path: modelPath, ...model },
    batch: { maxSize: 64, maxDelayMs: 2 },
    log: { level: 'info', rejectLogIntervalMs: 0 },
    schedule,
  });
  await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
  const topics = (n: number) => Array.from({ length: n }, (_, i) => `${prefix}/sensors/pump-${i}/telemetry`);
  return { daemon, topics };
}

/** Polls /readyz every 20 ms until stopped; keeps every status seen. */
function pollReadyz(daemon: CapturedDaemon): { stop(): Promise<number[]> } {
  const statuses: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      statuses.push(await daemon.readyz().then((r) => r.status, () => 0));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return statuses;
    },
  };
}

const servedVersion = (d: CapturedDaemon) => (d.daemon.readiness().detail.model as { version: string } | null)?.version;

/**
 * Streams until `rows` steps are done and at least `tail` steps have gone out after the swap to
 * `target`, which `ship` starts at step `at`. Returns the step at which the new version was served.
 */
async function streamThroughSwap(daemon: CapturedDaemon, stream: SteadyStream, target: ModelFiles, ship: () => void, at: number, rows: number, tail: number) {
  let swappedAt = -1;
  for (let step = 0; step < rows || swappedAt < 0 || step < swappedAt + tail; step++) {
    if (step === at) ship();
    if (swappedAt < 0 && servedVersion(daemon) === target.manifest.version) swappedAt = step;
    if (step > rows + 2000) throw new Error('the new model was never swapped in');
    await stream.step();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return swappedAt;
}

async function expectExactlyScored(daemon: CapturedDaemon, expected: number): Promise<string> {
  await daemon.waitForMetric('sentinel_windows_scored_total', expected, 20_000);
  // Nothing late may arrive on top: a window scored twice would show up here.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const text = await daemon.metrics();
  expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(expected);
  expect(metricValue(text, 'sentinel_windows_failed_total')).toBe(0);
  expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(0);
  return text;
}

describe('zero-downtime model swap through Mosquitto', () => {
  it('takes a model dropped into the folder (watcher) mid-stream: no window lost or scored twice, /readyz 200 throughout', async () => {
    const path = modelDir(modelA);
    const { daemon, topics } = await swapDaemon('swap-watch', path, { watch: true });
    try {
      expect(servedVersion(daemon)).toBe(modelA.manifest.version);
      const stream = new SteadyStream(publisher, topics(4), 11);
      const readyz = pollReadyz(daemon);
      const swappedAt = await streamThroughSwap(daemon, stream, modelB, () => placeModel(path, modelB), 150, 400, 150);
      const statuses = await readyz.stop();

      const expected = stream.expectedWindows(modelA.manifest);
      const text = await expectExactlyScored(daemon, expected);
      expect(swappedAt).toBeGreaterThan(150);
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(4 * stream.rows);
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'refused' })).toBe(0);
      expect(metricValue(text, 'sentinel_model_info', { version: modelB.manifest.version, name: 'pump-b' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_info', { version: modelA.manifest.version })).toBe(0);
      expect(statuses.length).toBeGreaterThan(20);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(daemon.logText()).toContain('"msg":"model swapped"');
      console.log(JSON.stringify({ test: 'model-swap/watch', streams: 4, rows: stream.rows, swappedAtRow: swappedAt, windowsExpected: expected, windowsScored: metricValue(text, 'sentinel_windows_scored_total'), readyzPolls: statuses.length, readyzNot200: 0 }));
    } finally {
      await daemon.stop();
    }
  });

  it('takes a new model found by the cron poll (no watcher) mid-stream, exactly once', async () => {
    const path = modelDir(modelB);
    const { daemon, topics } = await swapDaemon('swap-poll', path, { watch: false }, { modelPoll: '* * * * * *' });
    try {
      const stream = new SteadyStream(publisher, topics(3), 31);
      const readyz = pollReadyz(daemon);
      const swappedAt = await streamThroughSwap(daemon, stream, modelA, () => placeModel(path, modelA), 100, 300, 100);
      const statuses = await readyz.stop();

      const expected = stream.expectedWindows(modelA.manifest);
      const text = await expectExactlyScored(daemon, expected);
      expect(swappedAt).toBeGreaterThan(100);
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_info', { version: modelA.manifest.version, name: 'pump-a' })).toBe(1);
      expect(metricValue(text, 'sentinel_model_info', { version: modelB.manifest.version })).toBe(0);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      // Reloading the version already served changes nothing.
      expect(await daemon.daemon.reloadModel()).toBe('swapped');
      expect(metricValue(await daemon.metrics(), 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(1);
      console.log(JSON.stringify({ test: 'model-swap/poll', streams: 3, rows: stream.rows, swappedAtRow: swappedAt, windowsExpected: expected, windowsScored: metricValue(text, 'sentinel_windows_scored_total'), readyzPolls: statuses.length }));
    } finally {
      await daemon.stop();
    }
  });

  it('refuses corrupt and incompatible models (old one keeps serving, metric + warning say why) and waits for a half-written one', async () => {
    const path = modelDir(modelA);
    const { daemon, topics } = await swapDaemon('swap-refuse', path, { watch: true });
    const refused = (text: string) => metricValue(text, 'sentinel_model_swaps_total', { result: 'refused' });
    try {
      const stream = new SteadyStream(publisher, topics(2), 51);
      const readyz = pollReadyz(daemon);
      const scoreMore = async (rows: number) => {
        for (let i = 0; i < rows; i++) await stream.step();
        const text = await expectExactlyScored(daemon, stream.expectedWindows(modelA.manifest));
        expect(metricValue(text, 'sentinel_model_info', { version: modelA.manifest.version })).toBe(1);
      };
      await scoreMore(60);

      placeModel(path, corruptModel(modelA));
      await daemon.waitForMetric('sentinel_model_swaps_total', 1, 10_000, { result: 'refused' });
      expect(daemon.logText()).toMatch(/"level":40,.*"err":"[^"]*not a loadable ONNX model[^"]*".*"msg":"new model refused; the old one keeps serving"/);
      await scoreMore(40);

      placeModel(path, trainPumpModel(303, { channels: ['vibration', 'current', 'pressure', 'temperature'] }));
      await daemon.waitForMetric('sentinel_model_swaps_total', 2, 10_000, { result: 'refused' });
      expect(daemon.logText()).toMatch(/"problem":"channels \[vibration, current, pressure, temperature\] differ from the running \[vibration, current, pressure, temperature, flow\]"/);
      await scoreMore(40);

      placeModel(path, trainPumpModel(404, { window: 10 }));
      await daemon.waitForMetric('sentinel_model_swaps_total', 3, 10_000, { result: 'refused' });
      expect(daemon.logText()).toMatch(/"problem":"window 10 differs from the running 20"/);
      expect(daemon.logText()).toMatch(/"level":40.*"msg":"new model refused: it does not fit the running pipeline/);
      await scoreMore(40);

      // A copy in progress: B's manifest beside half of B's bytes. Its hash does not match yet.
      const half = Math.floor(modelB.onnx.length / 2);
      writeFileSync(path, modelB.onnx.subarray(0, half));
      writeFileSync(manifestPathFor(path), JSON.stringify(modelB.manifest, null, 2) + '\n');
      await waitFor(() => /"msg":"new model not readable yet; will retry"/.test(daemon.logText()), 10_000, 'incomplete model seen');
      let text = await daemon.metrics();
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'incomplete' })).toBeGreaterThanOrEqual(1);
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(0);
      await scoreMore(40);

      appendFileSync(path, modelB.onnx.subarray(half));
      await daemon.waitForMetric('sentinel_model_swaps_total', 1, 10_000, { result: 'swapped' });
      for (let i = 0; i < 40; i++) await stream.step();
      text = await expectExactlyScored(daemon, stream.expectedWindows(modelA.manifest));
      const statuses = await readyz.stop();
      expect(metricValue(text, 'sentinel_model_info', { version: modelB.manifest.version })).toBe(1);
      expect(refused(text)).toBe(3);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      console.log(JSON.stringify({ test: 'model-swap/refuse', refused: refused(text), incomplete: metricValue(text, 'sentinel_model_swaps_total', { result: 'incomplete' }), swapped: 1, rows: stream.rows, windowsScored: metricValue(text, 'sentinel_windows_scored_total'), readyzPolls: statuses.length }));
    } finally {
      await daemon.stop();
    }
  });

  it('swaps 200 times with RSS flat (old sessions released)', async () => {
    const path = modelDir(modelA);
    const { daemon } = await swapDaemon('swap-leak', path, { watch: false });
    // Both versions staged once; each swap is two renames, like an operator's copy.
    const staged = [modelA, modelB].map((m, i) => {
      const p = join(work, `staged-${i}-${process.pid}.onnx`);
      placeModel(p, m);
      return p;
    });
    const swaps = 200;
    const warmup = 20;
    const boundMb = 40;
    try {
      let before = 0;
      const started = performance.now();
      for (let i = 1; i <= swaps; i++) {
        const from = staged[i % 2] as string;
        copyFileSync(from, `${path}.tmp`);
        copyFileSync(manifestPathFor(from), `${manifestPathFor(path)}.tmp`);
        renameSync(`${path}.tmp`, path);
        renameSync(`${manifestPathFor(path)}.tmp`, manifestPathFor(path));
        expect(await daemon.daemon.reloadModel()).toBe('swapped');
        if (i === warmup) before = await settledRssMb();
      }
      const seconds = (performance.now() - started) / 1000;
      const after = await settledRssMb();
      const text = await daemon.metrics();
      expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'swapped' })).toBe(swaps);
      expect(metricValue(text, 'sentinel_model_info', { version: modelA.manifest.version })).toBe(1);
      console.log(
        JSON.stringify({ test: 'model-swap/leak', swaps, rssAtSwap20Mb: +before.toFixed(1), rssAtSwap200Mb: +after.toFixed(1), growthMb: +(after - before).toFixed(1), boundMb, gc: collector() !== null, seconds: +seconds.toFixed(1) }),
      );
      expect(after - before).toBeLessThan(boundMb);
    } finally {
      await daemon.stop();
    }
  });
});
