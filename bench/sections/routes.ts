/**
 * Routes: the daemon's CPU per message with one model, with two routes (two models, the streams split
 * over two topic families), with one live plus one shadow model, and with OpenTelemetry tracing on
 * (every batch traced, exported to an OTLP receiver in the bench process; "one model" has it off, the
 * default), on the same json-value messages
 * (1,000 streams, QoS 1, single-channel window-32 models), in the same run and through the same broker.
 * Each setup runs in its own daemon, all three started up front and measured in turn within each
 * repeat (each repeat starting with another), so a noisy spell on the machine hits every setup alike. Its /metrics must show that the
 * setup did what it claims (both models scored windows, the shadow scored windows), or the section fails.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SubscriptionConfig } from '../../src/config/schema.js';
import { readManifest, swapIncompatibility } from '../../src/model/scorer.js';
import { candidatePathFor } from '../../src/route/route.js';
import type { BenchContext } from '../context.js';
import { DaemonProcess, awaitSubscribed } from '../lib/daemon.js';
import { daemonConsumer, fillWindows, measure, type RunMeasurement } from '../lib/measure.js';
import { copyModel, trainSineModel } from '../lib/models.js';
import type { PublisherJob } from '../lib/agent.js';
import { median } from '../report.js';
import { probePayload } from './throughput.js';
import { OtlpReceiver } from '../../test/support/otlp-receiver.js';
import { buildAtRevision } from '../lib/baseline-build.js';

export const routeSetups = ['one model', 'two routes', 'live + shadow', 'tracing on', 'build before'] as const;
export type RouteSetup = (typeof routeSetups)[number];

/** The route names in the config: `model` keeps its default name, `models[]` adds the second. */
const FIRST = 'default';
const SECOND = 'second';
/** Topic families: half the streams each; one subscription takes both unless the setup splits them. */
const FAMILIES = ['a', 'b'] as const;

export interface RoutesRun {
  setup: RouteSetup;
  repeat: number;
  measurement: RunMeasurement;
  messagesReceived: number;
  /** CPU per 100k messages received. */
  cpuPer100kReceived: number;
  windowsScored: number;
  /** Windows scored per `model` label. */
  windowsByModel: Record<string, number>;
  shadowWindowsScored: number;
  shadowWindowsFailed: number;
  /** sentinel_trace_spans_total by outcome during the run (0 with tracing off). */
  traceSpans: { ended: number; exported: number; exportFailed: number };
  meanBatch: number;
  rejected: number;
  dropped: number;
}

export interface RoutesComparison {
  setup: RouteSetup;
  rate: number;
  cpuPer100k: number;
  /** This setup's CPU per message / one model's; target ≤ 1.3 for two routes and for live + shadow. */
  cpuRatio: number;
  /** This setup's messages/s / one model's. */
  throughputRatio: number;
  lostQos1: number;
}

export interface RoutesResults {
  broker: string;
  format: 'json-value';
  qos: 1;
  streams: number;
  window: number;
  /** Versions of the live model and the candidate (another ONNX file, same window and channel), and what the candidate was trained on. */
  models: { live: string; candidate: string; candidateData: string; family: string };
  runs: RoutesRun[];
  comparisons: RoutesComparison[];
  /** What /metrics showed each setup did, checked before anything is reported. */
  checks: string[];
  /** Spans the bench's OTLP receiver took from the "tracing on" daemon, and in how many exports. */
  otlpReceived: { spans: number; exports: number };
  /** The commit whose build ran as "build before" (BENCH_BASELINE_REV), or null when it did not run. */
  before: { rev: string; commit: string } | null;
}

interface SetupDaemon {
  setup: RouteSetup;
  name: string;
  daemon: DaemonProcess;
}

export async function runRoutes(ctx: BenchContext): Promise<RoutesResults> {
  const { settings, log } = ctx;
  const broker = settings.brokers[0] ?? 'mosquitto';
  const external = broker === 'mosquitto' ? await ctx.mosquitto() : null;
  const protocolVersion: 4 | 5 = external ? 5 : 4;
  const sine = ctx.sineModel();
  const live = await readManifest(sine.path);
  const dir = join(ctx.dir, 'routes');
  const candidatePath = candidatePathFor(join(dir, 'shadow', 'bench-sine.onnx'));
  let candidate = trainSineModel(candidatePath, 'bench-sine-candidate', 33);
  let candidateData = 'other data (noise seed 33)';
  const misfit = swapIncompatibility(live, candidate);
  if (misfit !== null) {
    // E.g. a per-stream baseline fitted to the data: the same fit under another name is another ONNX file doing the same work.
    candidate = trainSineModel(candidatePath, 'bench-sine-candidate', 32);
    candidateData = `the live model's data under another name, since one trained on other data does not fit the live pipeline: ${misfit}`;
    const still = swapIncompatibility(live, candidate);
    if (still !== null) throw new Error(`the candidate model would not run in shadow: ${still}`);
  }
  if (candidate.version === live.version) throw new Error('the candidate model is the live model (same ONNX file)');
  log(`  candidate model: ${candidateData}`);

  const daemons: SetupDaemon[] = [];
  const receiver = await new OtlpReceiver({ keepSpans: false }).start();
  // "build before": the same setup as "one model", run by an earlier commit's build (e.g. before tracing existed).
  const before = settings.baselineRev === null ? null : { rev: settings.baselineRev, ...buildAtRevision(settings.baselineRev, ctx.dir, log) };
  const setups = routeSetups.filter((setup) => setup !== 'build before' || before !== null);
  try {
    for (const setup of setups) daemons.push(await startSetup(ctx, dir, setup, sine.path, external?.url ?? null, protocolVersion, receiver.url, before?.cli));
    const runs: RoutesRun[] = [];
    for (let repeat = 0; repeat < settings.repeats; repeat++) {
      // Each repeat starts with another setup, so none is always measured first.
      for (let k = 0; k < daemons.length; k++) {
        const { setup, name, daemon } = daemons[(repeat + k) % daemons.length] as SetupDaemon;
        const run = await measureSetup(ctx, setup, name, daemon, repeat, external?.pid ?? null, protocolVersion, sine.unscored);
        log(
          `  ${setup}: ${Math.round(run.measurement.rate)} msg/s, ${run.cpuPer100kReceived.toFixed(2)} CPU s/100k, received ${run.messagesReceived}/${run.measurement.acked}, ` +
            `scored ${run.windowsScored} (${Object.entries(run.windowsByModel).map(([m, n]) => `${m} ${n}`).join(', ')}; shadow ${run.shadowWindowsScored}), mean batch ${run.meanBatch.toFixed(1)}`,
        );
        runs.push(run);
      }
    }
    const checks = verify(runs);
    const comparisons = compare(runs, setups);
    return {
      broker,
      format: 'json-value',
      qos: 1,
      streams: settings.streams,
      window: sine.window,
      models: { live: live.version, candidate: candidate.version, candidateData, family: live.family },
      runs,
      comparisons,
      checks,
      otlpReceived: { spans: receiver.received, exports: receiver.requests.length },
      before: before === null ? null : { rev: before.rev, commit: before.commit },
    };
  } finally {
    for (const { name, daemon } of daemons) {
      const code = await daemon.stop();
      if (code !== 0) log(`  warning: daemon ${name} exited with ${code}`);
    }
    await receiver.stop();
  }
}

/** Starts the daemon of one setup, each with its own copy of the model files, and waits for its subscriptions (and shadow). */
async function startSetup(
  ctx: BenchContext,
  root: string,
  setup: RouteSetup,
  modelPath: string,
  brokerUrl: string | null,
  protocolVersion: 4 | 5,
  otlpUrl: string,
  beforeCli: string | undefined,
): Promise<SetupDaemon> {
  const short: Record<RouteSetup, string> = { 'one model': 'one', 'two routes': 'two', 'live + shadow': 'shadow', 'tracing on': 'tracing', 'build before': 'before' };
  const name = `routes-${short[setup]}`;
  const dir = join(root, name.slice('routes-'.length));
  mkdirSync(dir, { recursive: true });
  const first = join(dir, 'bench-sine.onnx');
  copyModel(modelPath, first);
  const sub = (filter: string, model?: string): SubscriptionConfig => ({ topic: filter, format: 'json-value', qos: 1, ...(model ? { model } : {}) });
  // Two routes cannot share a model file (each swaps its own), so the second route gets a copy.
  const second = join(dir, 'bench-sine-second.onnx');
  if (setup === 'two routes') copyModel(modelPath, second);
  const subscriptions =
    setup === 'two routes' ? [sub(`bench/${name}/a/+/+/value`), sub(`bench/${name}/b/+/+/value`, SECOND)] : [sub(`bench/${name}/+/+/+/value`)];
  const daemon = await DaemonProcess.start({
    dir: ctx.dir,
    name,
    brokerUrl,
    protocolVersion,
    subscription: subscriptions[0] as SubscriptionConfig,
    modelPath: first,
    alertPrefix: `bench-alerts/${name}`,
    ...(setup === 'build before' ? { cli: beforeCli } : {}),
    extra: {
      subscriptions,
      ...(setup === 'two routes' ? { models: [{ name: SECOND, path: second }] } : {}),
      ...(setup === 'tracing on' ? { tracing: { enabled: true, endpoint: otlpUrl, batchSampleRatio: 1 } } : {}),
    },
  });
  try {
    for (const s of subscriptions) {
      const topic = s.topic.replace('+/+/+', 'a/probe/p').replace('+/+', 'probe/p');
      await awaitSubscribed(daemon, protocolVersion, topic, probePayload('json-value'), s.topic);
    }
    if (setup === 'live + shadow') await awaitShadow(daemon, name);
    return { setup, name, daemon };
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}

/** The candidate is loaded by its watcher (at start, or by the model poll): wait until it is scoring in shadow. */
async function awaitShadow(daemon: DaemonProcess, name: string): Promise<void> {
  const deadline = performance.now() + 45_000;
  while (!(await daemon.metrics(['sentinel_shadow_model_info'])).has('sentinel_shadow_model_info')) {
    if (performance.now() > deadline) throw new Error(`daemon ${name} did not load the candidate model in shadow within 45 s; output:\n${daemon.recentOutput}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function measureSetup(
  ctx: BenchContext,
  setup: RouteSetup,
  name: string,
  daemon: DaemonProcess,
  repeat: number,
  brokerPid: number | null,
  protocolVersion: 4 | 5,
  /** Rows per stream that complete no window (filling, or the baseline's warm-up): sent before the measured messages. */
  unscored: number,
): Promise<RoutesRun> {
  const { settings } = ctx;
  // The same two publishers (half the streams and messages each, one per topic family) for every setup.
  const half = Math.floor(settings.streams / 2);
  const jobs: PublisherJob[] = FAMILIES.map((family, i) => {
    const streams = i === 0 ? half : settings.streams - half;
    return {
      url: daemon.brokerUrl,
      protocolVersion,
      clientId: `bench-pub-${process.pid}-${name}-${family}${repeat}`,
      qos: 1,
      topicPrefix: `bench/${name}/${family}/r${repeat}`,
      topicSuffix: 'value',
      streams,
      format: 'json-value',
      messages: Math.round((settings.messages * streams) / settings.streams),
      window: settings.publisherWindow,
      seed: 2000 + repeat,
    };
  });
  const dc = daemonConsumer(daemon);
  const measured = await fillWindows(dc, jobs, settings.fillWindows ? unscored : 0);
  const before = await daemon.metrics();
  const run = await measure(dc, brokerPid, measured);
  const after = await daemon.metrics();
  const delta = (metric: string): number => after.sum(metric) - before.sum(metric);
  const byModel = (metric: string, model: string): number => after.sumWhere(metric, { model }) - before.sumWhere(metric, { model });
  const models = setup === 'two routes' ? [FIRST, SECOND] : [FIRST];
  const received = delta('sentinel_messages_received_total');
  return {
    setup,
    repeat,
    measurement: run,
    messagesReceived: received,
    cpuPer100kReceived: (run.cpuSeconds / Math.max(1, received)) * 100_000,
    windowsScored: delta('sentinel_windows_scored_total'),
    windowsByModel: Object.fromEntries(models.map((m) => [m, byModel('sentinel_windows_scored_total', m)])),
    shadowWindowsScored: delta('sentinel_shadow_windows_scored_total'),
    shadowWindowsFailed: delta('sentinel_shadow_windows_failed_total'),
    traceSpans: {
      ended: after.sumWhere('sentinel_trace_spans_total', { outcome: 'ended' }) - before.sumWhere('sentinel_trace_spans_total', { outcome: 'ended' }),
      exported: after.sumWhere('sentinel_trace_spans_total', { outcome: 'exported' }) - before.sumWhere('sentinel_trace_spans_total', { outcome: 'exported' }),
      exportFailed: after.sumWhere('sentinel_trace_spans_total', { outcome: 'export_failed' }) - before.sumWhere('sentinel_trace_spans_total', { outcome: 'export_failed' }),
    },
    meanBatch: delta('sentinel_batch_size_sum') / Math.max(1, delta('sentinel_batch_size_count')),
    rejected: delta('sentinel_readings_rejected_total'),
    dropped: delta('sentinel_readings_dropped_total'),
  };
}

/** Throws unless every run did what its setup claims; returns what was seen. */
function verify(runs: RoutesRun[]): string[] {
  const problems: string[] = [];
  const checks: string[] = [];
  for (const r of runs) {
    const where = `${r.setup} #${r.repeat}`;
    if (r.windowsScored === 0) problems.push(`${where}: no window scored`);
    if (r.measurement.lost > 0) problems.push(`${where}: ${r.measurement.lost} QoS 1 messages lost`);
    if (r.setup === 'two routes') {
      for (const [model, n] of Object.entries(r.windowsByModel)) if (n === 0) problems.push(`${where}: model "${model}" scored no window`);
      checks.push(`${where}: windows scored by model ${Object.entries(r.windowsByModel).map(([m, n]) => `${m}=${n}`).join(', ')}`);
    }
    if (r.setup === 'live + shadow') {
      if (r.shadowWindowsScored === 0) problems.push(`${where}: the shadow model scored no window (sentinel_shadow_windows_scored_total)`);
      checks.push(`${where}: sentinel_shadow_windows_scored_total +${r.shadowWindowsScored} of ${r.windowsScored} live windows, ${r.shadowWindowsFailed} failed`);
    } else if (r.shadowWindowsScored > 0) {
      problems.push(`${where}: a shadow model scored ${r.shadowWindowsScored} windows where none should run`);
    }
    const spans = r.traceSpans;
    if (r.setup === 'tracing on') {
      // Three spans per batch: batch, inference, decide.
      if (spans.ended < 3) problems.push(`${where}: tracing on, but ${spans.ended} spans ended`);
      if (spans.exportFailed > 0) problems.push(`${where}: ${spans.exportFailed} spans failed to export`);
      checks.push(`${where}: sentinel_trace_spans_total ended +${spans.ended}, exported +${spans.exported}, failed +${spans.exportFailed}`);
    } else if (spans.ended > 0) {
      problems.push(`${where}: ${spans.ended} spans ended with tracing off`);
    }
  }
  if (problems.length > 0) throw new Error(`routes did not run as set up: ${problems.join('; ')}`);
  return checks;
}

function compare(runs: RoutesRun[], setups: readonly RouteSetup[]): RoutesComparison[] {
  const of = (setup: RouteSetup): RoutesRun[] => runs.filter((r) => r.setup === setup);
  const one = of('one model');
  const baseCpu = median(one.map((r) => r.cpuPer100kReceived));
  const baseRate = median(one.map((r) => r.measurement.rate));
  return setups.map((setup) => {
    const list = of(setup);
    const cpu = median(list.map((r) => r.cpuPer100kReceived));
    const rate = median(list.map((r) => r.measurement.rate));
    return {
      setup,
      rate,
      cpuPer100k: cpu,
      cpuRatio: cpu / baseCpu,
      throughputRatio: rate / baseRate,
      lostQos1: list.reduce((sum, r) => sum + r.measurement.lost, 0),
    };
  });
}
