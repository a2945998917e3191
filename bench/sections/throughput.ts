/**
 * Baseline vs daemon through the same broker at QoS 0 and 1, for each telemetry format (every channel
 * in one message, or one value per topic): messages/s and process CPU seconds per 100k messages. With Mosquitto the broker is its own process and does the same work for both, so the
 * consumers are compared alone. With the embedded broker aedes runs inside the daemon's process and
 * hands it telemetry in-process, so the daemon's process (broker and pipeline) is compared with the
 * baseline's broker share (aedes serving the external baseline subscriber, measured in the daemon's
 * process while it only brokered) plus the baseline subscriber.
 */
import { readFileSync } from 'node:fs';
import type { BenchFormat, BrokerKind } from '../settings.js';
import type { BenchContext } from '../context.js';
import { unscoredRows } from '../../src/model/manifest.js';
import { DaemonProcess, awaitSubscribed } from '../lib/daemon.js';
import { daemonConsumer, fillWindows, measure, startBaseline, type RunMeasurement } from '../lib/measure.js';
import { median } from '../report.js';

/** How one format is published and scored. */
export interface FormatSetup {
  format: BenchFormat;
  /** Last topic level: `<prefix>/<run>/s<n>/<suffix>`. */
  topicSuffix: string;
  /** null: the default model (models/default.onnx). */
  modelPath: string | null;
  model: string;
  window: number;
  channels: number;
  /** Readings per stream published before the measured messages to fill its window (0: fresh streams). */
  fillRounds: number;
}

export interface ThroughputRun {
  broker: BrokerKind;
  format: BenchFormat;
  qos: 0 | 1;
  repeat: number;
  baseline: RunMeasurement;
  /** `received` and `rate` count readings the daemon kept (received − rejected − dropped). */
  daemon: RunMeasurement & {
    messagesReceived: number;
    /** CPU per 100k messages received (dropped ones cost their parse too). */
    cpuPer100kReceived: number;
    windowsScored: number;
    /** Mean windows per inference run. */
    meanBatch: number;
    /** Model run wall time per window scored, µs (sentinel_inference_duration_seconds: includes the wait for the event loop). */
    inferenceMicrosPerWindow: number;
    dropped: number;
    rejected: number;
    alertsPublished: number;
    backpressureWaits: number;
  };
}

export interface ThroughputComparison {
  broker: BrokerKind;
  format: BenchFormat;
  qos: 0 | 1;
  baselineRate: number;
  daemonRate: number;
  /** daemon / baseline messages/s (the daemon's count: readings kept, not dropped); target ≥ 0.9. */
  throughputRatio: number;
  baselineCpuPer100k: number;
  /** The daemon process's CPU per 100k messages received (with the embedded broker: including aedes). */
  daemonCpuPer100k: number;
  /** Broker CPU per 100k (Mosquitto's process, or aedes' share of the daemon's process). */
  brokerCpuPer100k: number | null;
  /** Baseline side of the CPU ratio: the subscriber (Mosquitto), or broker share + subscriber (embedded). */
  comparedBaselineCpuPer100k: number;
  /** Daemon side of the CPU ratio: the daemon's process (with the embedded broker: broker included). */
  comparedDaemonCpuPer100k: number;
  /** compared daemon / compared baseline CPU per message; target ≤ 1.5. */
  cpuRatio: number;
  lostQos1: number;
  /** Readings the daemon dropped by its QoS 0 drop policy, all repeats together. */
  dropped: number;
}

export interface ThroughputResults {
  formats: FormatSetup[];
  runs: ThroughputRun[];
  comparisons: ThroughputComparison[];
}

/**
 * json-values: 5-channel pump readings scored by the default model; json-value: one value per topic,
 * the channel being the model's only one, scored by the single-channel window-32 model.
 */
export function formatSetup(ctx: BenchContext, format: BenchFormat): FormatSetup {
  // Every stream first gets the rows that complete no window (the window filling, or its baseline's warm-up).
  const fill = (unscored: number): number => (ctx.settings.fillWindows ? unscored : 0);
  if (format === 'json-values') {
    const manifest = JSON.parse(readFileSync('models/default.json', 'utf8')) as { name: string; window: number; channels: string[]; baseline?: { warmupRows: number } };
    return { format, topicSuffix: 'telemetry', modelPath: null, model: manifest.name, window: manifest.window, channels: manifest.channels.length, fillRounds: fill(unscoredRows(manifest)) };
  }
  const sine = ctx.sineModel();
  return { format, topicSuffix: 'value', modelPath: sine.path, model: 'bench-sine', window: sine.window, channels: 1, fillRounds: fill(sine.unscored) };
}

export async function runThroughput(ctx: BenchContext): Promise<ThroughputResults> {
  const { settings } = ctx;
  const formats = settings.formats.map((format) => formatSetup(ctx, format));
  const runs: ThroughputRun[] = [];
  const comparisons: ThroughputComparison[] = [];
  for (const broker of settings.brokers) {
    for (const setup of formats) {
      for (const qos of [0, 1] as const) {
        const pairRuns = await runPairs(ctx, broker, setup, qos);
        runs.push(...pairRuns);
        comparisons.push(compare(broker, setup.format, qos, pairRuns));
      }
    }
  }
  return { formats, runs, comparisons };
}

/** One daemon for a broker, format and QoS; baseline/daemon pairs on the same messages, BENCH_REPEATS times. */
async function runPairs(ctx: BenchContext, broker: BrokerKind, setup: FormatSetup, qos: 0 | 1): Promise<ThroughputRun[]> {
  const { settings, log } = ctx;
  const { format, topicSuffix } = setup;
  const name = `tp-${broker}-${format}-q${qos}`;
  const label = `${broker} ${format} QoS ${qos}`;
  const external = broker === 'mosquitto' ? await ctx.mosquitto() : null;
  const protocolVersion: 4 | 5 = broker === 'mosquitto' ? 5 : 4;
  const daemon = await DaemonProcess.start({
    dir: ctx.dir,
    name,
    brokerUrl: external ? external.url : null,
    protocolVersion,
    subscription: { topic: `bench/${name}/+/+/${topicSuffix}`, format, qos },
    ...(setup.modelPath !== null ? { modelPath: setup.modelPath } : {}),
    alertPrefix: `bench-alerts/${name}`,
  });
  const pairRuns: ThroughputRun[] = [];
  try {
    await awaitSubscribed(daemon, protocolVersion, `bench/${name}/probe/p/${topicSuffix}`, probePayload(format));
    // The broker's CPU: Mosquitto's process, or (embedded) the daemon's process while it only brokers.
    const baselineBrokerPid = external ? external.pid : daemon.pid;
    for (let repeat = 0; repeat < settings.repeats; repeat++) {
      const job = {
        url: daemon.brokerUrl,
        protocolVersion,
        qos,
        topicSuffix,
        streams: settings.streams,
        format,
        messages: settings.messages,
        window: settings.publisherWindow,
        seed: 1000 + repeat,
      };
      const { consumer, agent } = await startBaseline({
        url: daemon.brokerUrl,
        protocolVersion,
        clientId: `bench-baseline-${process.pid}-${name}-${repeat}`,
        filter: `base/${name}/r${repeat}/+/${topicSuffix}`,
        qos,
      });
      let baseline: RunMeasurement;
      try {
        // The same readings the daemon gets after its windows are filled.
        const baselineJob = { ...job, firstRound: setup.fillRounds, clientId: `bench-pub-${process.pid}-b${repeat}`, topicPrefix: `base/${name}/r${repeat}` };
        baseline = await measure(consumer, baselineBrokerPid, baselineJob);
      } finally {
        await agent.result(true).catch(() => undefined);
        await agent.close();
      }
      log(`  ${label} baseline: ${fmtRun(baseline)}`);
      const dc = daemonConsumer(daemon);
      const daemonJobs = await fillWindows(dc, [{ ...job, clientId: `bench-pub-${process.pid}-d${repeat}`, topicPrefix: `bench/${name}/r${repeat}` }], setup.fillRounds);
      const before = await daemon.metrics();
      const measured = await measure(dc, external ? external.pid : null, daemonJobs);
      const after = dc.last() ?? (await daemon.metrics());
      const delta = (metric: string): number => after.sum(metric) - before.sum(metric);
      const run: ThroughputRun = {
        broker,
        format,
        qos,
        repeat,
        baseline,
        daemon: {
          ...measured,
          messagesReceived: delta('sentinel_messages_received_total'),
          cpuPer100kReceived: (measured.cpuSeconds / Math.max(1, delta('sentinel_messages_received_total'))) * 100_000,
          windowsScored: delta('sentinel_windows_scored_total'),
          meanBatch: delta('sentinel_batch_size_sum') / Math.max(1, delta('sentinel_batch_size_count')),
          inferenceMicrosPerWindow: (delta('sentinel_inference_duration_seconds_sum') * 1e6) / Math.max(1, delta('sentinel_windows_scored_total')),
          dropped: delta('sentinel_readings_dropped_total'),
          rejected: delta('sentinel_readings_rejected_total'),
          alertsPublished: delta('sentinel_alerts_published_total'),
          backpressureWaits: delta('sentinel_backpressure_waits_total'),
        },
      };
      log(`  ${label} daemon:   ${fmtRun(measured)} kept of ${run.daemon.messagesReceived} received, scored ${run.daemon.windowsScored} (mean batch ${run.daemon.meanBatch.toFixed(1)}, model run wall time ${run.daemon.inferenceMicrosPerWindow.toFixed(2)} µs/window), dropped ${run.daemon.dropped}, rejected ${run.daemon.rejected}`);
      pairRuns.push(run);
    }
  } finally {
    const code = await daemon.stop();
    if (code !== 0) log(`  warning: daemon ${name} exited with ${code}`);
  }
  return pairRuns;
}

function compare(broker: BrokerKind, format: BenchFormat, qos: 0 | 1, runs: ThroughputRun[]): ThroughputComparison {
  const m = (pick: (r: ThroughputRun) => number): number => median(runs.map(pick));
  const brokerShare = broker === 'embedded' ? m((r) => r.baseline.brokerCpuPer100k ?? 0) : 0;
  const brokerCpu = runs.every((r) => r.baseline.brokerCpuPer100k !== null) ? m((r) => r.baseline.brokerCpuPer100k as number) : null;
  const baselineRate = m((r) => r.baseline.rate);
  const daemonRate = m((r) => r.daemon.rate);
  const baselineCpu = m((r) => r.baseline.cpuPer100k);
  const daemonCpu = m((r) => r.daemon.cpuPer100kReceived);
  const comparedBaseline = baselineCpu + brokerShare;
  return {
    broker,
    format,
    qos,
    baselineRate,
    daemonRate,
    throughputRatio: daemonRate / baselineRate,
    baselineCpuPer100k: baselineCpu,
    daemonCpuPer100k: daemonCpu,
    brokerCpuPer100k: brokerCpu,
    comparedBaselineCpuPer100k: comparedBaseline,
    comparedDaemonCpuPer100k: daemonCpu,
    cpuRatio: daemonCpu / comparedBaseline,
    dropped: runs.reduce((sum, r) => sum + r.daemon.dropped, 0),
    lostQos1: qos === 1 ? runs.reduce((sum, r) => sum + r.daemon.lost + r.baseline.lost, 0) : 0,
  };
}

/** A reading the daemon accepts, to see that its subscription is in place. */
export function probePayload(format: BenchFormat = 'json-values'): string {
  if (format === 'json-value') return JSON.stringify({ ts: Date.now(), value: 0 });
  return JSON.stringify({ ts: Date.now(), values: { vibration: 2, current: 10, pressure: 4, temperature: 40, flow: 30 } });
}

function fmtRun(r: RunMeasurement): string {
  return `${Math.round(r.rate)} msg/s (overall ${Math.round(r.overallRate)}), ${r.cpuPer100k.toFixed(2)} CPU s/100k, received ${r.received}/${r.acked}`;
}
