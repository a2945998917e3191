/**
 * Latency at half the sustained rate (QoS 1): the daemon's own ingest→decision histogram over the
 * measured interval, and publish→alert end to end from outside — spike faults injected into fresh
 * streams, each timed from its publish to the arrival of its `raised` alert on the alert topic.
 */
import { readFileSync } from 'node:fs';
import type { BenchContext } from '../context.js';
import { unscoredRows } from '../../src/model/manifest.js';
import { DaemonProcess, awaitSubscribed } from '../lib/daemon.js';
import { startPublisher } from '../lib/measure.js';
import { histogramBetween, percentile, type HistogramSummary } from '../lib/prometheus.js';
import { cpuSeconds, sleep, waitUntil } from '../../test/support/proc.js';
import { probePayload } from './throughput.js';

export interface LatencyResults {
  broker: string;
  rate: number;
  rateSource: string;
  achievedRate: number;
  seconds: number;
  ingestToDecision: HistogramSummary;
  inference: HistogramSummary;
  meanBatchSize: number;
  publishToAlert: { faults: number; alerts: number; missing: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** The same faults timed to the daemon's decision (alert detectedAt, 1 ms resolution): broker in + daemon. */
  publishToDecision: { p50Ms: number; p99Ms: number; maxMs: number };
  daemonCpuShare: number;
}

export async function runLatency(ctx: BenchContext, sustainedRate: number | null): Promise<LatencyResults> {
  const { settings, log } = ctx;
  const broker = settings.brokers[0] ?? 'mosquitto';
  const external = broker === 'mosquitto' ? await ctx.mosquitto() : null;
  const protocolVersion: 4 | 5 = external ? 5 : 4;
  const rate = settings.latencyRate > 0 ? settings.latencyRate : Math.round((sustainedRate ?? 10_000) / 2);
  const rateSource =
    settings.latencyRate > 0 ? 'BENCH_LATENCY_RATE' : sustainedRate !== null ? 'half the daemon QoS 1 rate measured above' : 'default (throughput not run)';
  const unscored = unscoredRows(JSON.parse(readFileSync('models/default.json', 'utf8')) as { window: number; baseline?: { warmupRows: number } });
  const durationMs = settings.latencySeconds * 1000;
  // Faults start once every stream is scored (its window full and its baseline learned, plus margin), and the histogram starts with them.
  const warmupMs = Math.max(2000, Math.ceil((1.5 * (unscored + 1) * settings.streams * 1000) / rate));
  if (warmupMs >= durationMs) throw new Error(`BENCH_LATENCY_SECONDS too short: windows fill only after ${warmupMs} ms at ${rate} msg/s`);
  const everyMs = Math.max(10, Math.floor((durationMs - warmupMs) / Math.min(settings.streams, 400)));
  const name = 'latency';
  const daemon = await DaemonProcess.start({
    dir: ctx.dir,
    name,
    brokerUrl: external ? external.url : null,
    protocolVersion,
    subscription: { topic: `bench/${name}/+/+/telemetry`, format: 'json-values', qos: 1 },
    alertPrefix: `bench-alerts/${name}`,
  });
  try {
    await awaitSubscribed(daemon, protocolVersion, `bench/${name}/probe/p/telemetry`, probePayload());
    const publisher = await startPublisher({
      url: daemon.brokerUrl,
      protocolVersion,
      clientId: `bench-pub-${process.pid}-latency`,
      qos: 1,
      topicPrefix: `bench/${name}/r0`,
      topicSuffix: 'telemetry',
      streams: settings.streams,
      format: 'json-values',
      rate,
      durationMs,
      window: settings.publisherWindow,
      seed: 77,
      faults: { startAfterMs: warmupMs, everyMs },
      alertFilter: `bench-alerts/${name}/#`,
    });
    try {
      publisher.go();
      const done = publisher.result();
      await sleep(warmupMs);
      const before = await daemon.metrics();
      const cpu0 = cpuSeconds(daemon.pid);
      const result = await done;
      let prevScored = -1;
      await waitUntil(
        async () => {
          const m = await daemon.metrics();
          const scored = m.sum('sentinel_windows_scored_total');
          const idle = m.sum('sentinel_queue_depth') === 0 && scored === prevScored;
          prevScored = scored;
          return idle;
        },
        30_000,
        'the daemon to finish scoring',
        250,
      );
      const after = await daemon.metrics();
      const measuredSeconds = (after.at - before.at) / 1000;
      const delays = result.faults.flatMap((f) => (f.alertAfterMs === null ? [] : [f.alertAfterMs]));
      const decisions = result.faults.flatMap((f) => (f.decisionAfterMs === null ? [] : [f.decisionAfterMs]));
      const batchCount = after.sum('sentinel_batch_size_count') - before.sum('sentinel_batch_size_count');
      const out: LatencyResults = {
        broker,
        rate,
        rateSource,
        achievedRate: result.acked / (result.elapsedMs / 1000),
        seconds: settings.latencySeconds,
        ingestToDecision: histogramBetween('sentinel_ingest_to_decision_seconds', before, after),
        inference: histogramBetween('sentinel_inference_duration_seconds', before, after),
        meanBatchSize: (after.sum('sentinel_batch_size_sum') - before.sum('sentinel_batch_size_sum')) / Math.max(1, batchCount),
        publishToAlert: {
          faults: result.faults.length,
          alerts: delays.length,
          missing: result.faults.length - delays.length,
          p50Ms: percentile(delays, 0.5),
          p99Ms: percentile(delays, 0.99),
          maxMs: delays.length > 0 ? Math.max(...delays) : Number.NaN,
        },
        publishToDecision: {
          p50Ms: percentile(decisions, 0.5),
          p99Ms: percentile(decisions, 0.99),
          maxMs: decisions.length > 0 ? Math.max(...decisions) : Number.NaN,
        },
        daemonCpuShare: (cpuSeconds(daemon.pid) - cpu0) / measuredSeconds,
      };
      const h = out.ingestToDecision;
      log(
        `  ${broker} QoS 1 at ${rate} msg/s (achieved ${Math.round(out.achievedRate)}): ingest→decision p50 ${ms(h.p50)} p99 ${ms(h.p99)} (≤ ${ms(h.p99Bound)}) over ${h.count} windows; ` +
          `publish→alert p50 ${out.publishToAlert.p50Ms.toFixed(1)} ms p99 ${out.publishToAlert.p99Ms.toFixed(1)} ms max ${out.publishToAlert.maxMs.toFixed(1)} ms ` +
          `(${out.publishToAlert.alerts}/${out.publishToAlert.faults} faults alerted); publish→decision p50 ${out.publishToDecision.p50Ms.toFixed(1)} ms p99 ${out.publishToDecision.p99Ms.toFixed(1)} ms; mean batch ${out.meanBatchSize.toFixed(1)}`,
      );
      return out;
    } finally {
      publisher.kill();
    }
  } finally {
    await daemon.stop();
  }
}

function ms(seconds: number): string {
  return `${(seconds * 1000).toFixed(2)} ms`;
}
