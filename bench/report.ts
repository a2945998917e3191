/** Results file writers: bench/results/latest.json and a markdown table of the same numbers. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HotpathStep } from './sections/hotpath.js';
import type { LatencyResults } from './sections/latency.js';
import type { MemoryResults } from './sections/memory.js';
import type { ModelResults } from './sections/model.js';
import type { OverloadResults } from './sections/overload.js';
import type { RoutesResults } from './sections/routes.js';
import type { ThroughputResults } from './sections/throughput.js';
import type { BenchSettings } from './settings.js';

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchResults {
  meta: {
    startedAt: string;
    durationSeconds: number;
    node: string;
    cpus: number;
    cpuModel: string;
    commit: string | null;
    mosquitto: { version: string | null; config: string | null };
    brokerNote: string;
  };
  settings: BenchSettings;
  model?: ModelResults;
  hotpath?: HotpathStep[];
  throughput?: ThroughputResults;
  routes?: RoutesResults;
  latency?: LatencyResults;
  overload?: OverloadResults;
  memory?: MemoryResults;
  targets: TargetCheck[];
  errors: Array<{ section: string; message: string }>;
}

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const fixed = (n: number | null | undefined, digits = 2): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const ms = (seconds: number): string => `${fixed(seconds * 1000)} ms`;
const mb = (bytes: number): string => `${fixed(bytes / 1048576, 1)} MB`;

export function targetChecks(r: BenchResults): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const c of r.throughput?.comparisons ?? []) {
    out.push({
      target: `throughput ≥ 0.9× baseline (${c.broker}, ${c.format}, QoS ${c.qos})`,
      measured: `${fixed(c.throughputRatio)}× (${int(c.daemonRate)} vs ${int(c.baselineRate)} msg/s)`,
      met: c.throughputRatio >= 0.9,
    });
    out.push({
      target: `CPU/message ≤ 1.5× baseline (${c.broker}, ${c.format}, QoS ${c.qos})`,
      measured: `${fixed(c.cpuRatio)}× (${fixed(c.comparedDaemonCpuPer100k)} vs ${fixed(c.comparedBaselineCpuPer100k)} CPU s/100k${c.broker === 'embedded' ? ', broker included on both sides' : ''})`,
      met: c.cpuRatio <= 1.5,
    });
  }
  const one = r.routes?.comparisons.find((x) => x.setup === 'one model');
  for (const c of r.routes?.comparisons ?? []) {
    if (c.setup === 'one model') continue;
    if (c.setup === 'build before') {
      // The same daemon and workload built from the earlier commit: what the new code costs when its features are off.
      out.push({
        target: `CPU/message with tracing off ≤ 1.05× the build before (${r.routes?.before?.commit ?? '?'}), ${r.routes?.format}, QoS ${r.routes?.qos}`,
        measured: `${fixed(1 / c.cpuRatio)}× (${fixed(one?.cpuPer100k)} vs ${fixed(c.cpuPer100k)} CPU s/100k)`,
        met: 1 / c.cpuRatio <= 1.05,
      });
      continue;
    }
    out.push({
      target: `CPU/message ≤ 1.3× one model (${c.setup}, ${r.routes?.format}, QoS ${r.routes?.qos})`,
      measured: `${fixed(c.cpuRatio)}× (${fixed(c.cpuPer100k)} vs ${fixed(one?.cpuPer100k)} CPU s/100k)`,
      met: c.cpuRatio <= 1.3,
    });
  }
  if (r.latency) {
    const l = r.latency;
    out.push({
      target: `p99 ingest→decision < 25 ms at ${int(l.rate)} msg/s (daemon histogram)`,
      measured: `${ms(l.ingestToDecision.p99)} (bucket ≤ ${ms(l.ingestToDecision.p99Bound)})`,
      met: l.ingestToDecision.p99Bound <= 0.025,
    });
    out.push({
      target: `p99 publish→alert < 25 ms at ${int(l.rate)} msg/s (end to end, outside)`,
      measured: `${fixed(l.publishToAlert.p99Ms, 1)} ms over ${l.publishToAlert.alerts} faults (${l.publishToAlert.missing} without alert)`,
      met: l.publishToAlert.p99Ms < 25 && l.publishToAlert.missing === 0,
    });
  }
  if (r.memory) {
    const m = r.memory;
    const [deployed, defaults] = m.runs;
    if (deployed) {
      out.push({
        target: `RSS < 300 MB with ${int(m.streams)} single-channel streams, window ${m.window} (as deployed: ${deployed.nodeArgs.join(' ')})`,
        measured:
          `${mb(deployed.rssBytes)} (peak ${mb(deployed.peakRssBytes)}, ${m.readingsPerStream} readings/stream)` +
          (defaults ? `; Node defaults: ${mb(defaults.rssBytes)} (peak ${mb(defaults.peakRssBytes)})` : ''),
        met: deployed.rssBytes < 300 * 1048576 && deployed.peakRssBytes < 300 * 1048576 && deployed.streamsActive >= m.streams,
      });
    }
  }
  if (r.overload) {
    const o = r.overload;
    out.push({
      target: '0 messages lost at QoS 1 when pushed 2× the daemon rate',
      measured: `${o.lost} lost of ${int(o.acked)} acked, overload ×${fixed(o.overloadFactor)}, windows ${int(o.windowsScored)}/${int(o.windowsExpected)}`,
      met: o.lost === 0 && o.windowsScored === o.windowsExpected && o.rejected === 0 && o.overloadFactor >= 1.9,
    });
  }
  if (r.model) {
    const d = r.model.defaultModel.find((f) => f.batch === 1024);
    if (d) out.push({ target: '≥ 500k windows/s, default model, 1 thread, batch 1024', measured: `${int(d.perSecond)} windows/s`, met: d.perSecond >= 500_000 });
    const p = r.model.previousDefault?.find((f) => f.batch === 1024);
    if (d && p) {
      out.push({
        target: 'model cost per window ≤ 2× the previous default family (window-pca-t2q, same data), batch 1024',
        measured: `${fixed(p.perSecond / d.perSecond)}× (${fixed(1e6 / d.perSecond, 3)} vs ${fixed(1e6 / p.perSecond, 3)} µs/window)`,
        met: p.perSecond / d.perSecond <= 2,
      });
    }
    const t = r.model.training;
    out.push({ target: 'training 400 × 8 < 5 s', measured: `median ${fixed(t.medianMs, 1)} ms, max ${fixed(t.maxMs, 1)} ms`, met: t.maxMs < 5000 });
  }
  return out;
}

export function writeResults(results: BenchResults): { json: string; md: string } {
  mkdirSync(results.settings.outDir, { recursive: true });
  const json = join(results.settings.outDir, 'latest.json');
  const md = join(results.settings.outDir, 'latest.md');
  writeFileSync(json, JSON.stringify(results, null, 2) + '\n');
  writeFileSync(md, markdown(results));
  return { json, md };
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function markdown(r: BenchResults): string {
  const m = r.meta;
  const parts: string[] = [
    '# Sentinel bench results',
    '',
    `${m.startedAt}, ${fixed(m.durationSeconds, 0)} s, Node ${m.node}, ${m.cpus} × ${m.cpuModel}, commit ${m.commit ?? 'unknown'}` +
      `${r.settings.quick ? ', **BENCH_QUICK=1** (short runs, noisier)' : ''}. Generated by \`npm run bench\`; ratios compare runs made in this same run.`,
    '',
    `Broker: ${m.brokerNote}`,
    '',
    '## Targets',
    '',
    table(
      ['target', 'measured', 'met'],
      r.targets.map((t) => [t.target, t.measured, t.met ? 'yes' : '**no**']),
    ),
  ];
  if (r.throughput) {
    parts.push(
      '',
      '## Throughput and CPU: baseline (bare mqtt.js subscriber, JSON.parse only) vs daemon',
      '',
      `${int(r.settings.messages)} messages per run over ${int(r.settings.streams)} streams, publisher in its own process; ` +
        `${r.throughput.formats.map((f) => `${f.format}: ${f.channels}-channel model "${f.model}", window ${f.window}`).join('; ')}` +
        `${r.settings.fillWindows ? ' (every stream\'s window filled before the measured messages, so each of them completes a window)' : ' (fresh streams: the first readings of each fill its window)'}. ` +
        'CPU = utime+stime of the consumer process from /proc, per message received. The daemon\'s msg/s count readings it kept ' +
        '(received − rejected − dropped by the QoS 0 drop policy). With the embedded broker aedes runs inside the daemon and hands it telemetry ' +
        'in-process, so the CPU ratio compares the daemon process (broker + pipeline) with the baseline\'s broker share (measured while ' +
        'the daemon process only brokered for the baseline) plus the baseline subscriber.',
      '',
      table(
        ['broker', 'format', 'QoS', 'baseline msg/s', 'daemon msg/s', 'ratio', 'baseline CPU s/100k', 'daemon CPU s/100k', 'broker CPU s/100k', 'compared: baseline / daemon', 'CPU ratio', 'daemon dropped (QoS 0)', 'QoS 1 lost'],
        r.throughput.comparisons.map((c) => [
          c.broker,
          c.format,
          String(c.qos),
          int(c.baselineRate),
          int(c.daemonRate),
          fixed(c.throughputRatio),
          fixed(c.baselineCpuPer100k),
          fixed(c.daemonCpuPer100k),
          fixed(c.brokerCpuPer100k),
          `${fixed(c.comparedBaselineCpuPer100k)} / ${fixed(c.comparedDaemonCpuPer100k)}`,
          fixed(c.cpuRatio),
          c.qos === 0 ? int(c.dropped) : '–',
          c.qos === 1 ? String(c.lostQos1) : '–',
        ]),
      ),
      '',
      table(
        ['run', 'kept/acked', 'steady msg/s', 'overall msg/s', 'publisher msg/s', 'CPU s/100k received', 'publisher CPU s/100k', 'windows scored', 'mean batch', 'dropped', 'rejected'],
        r.throughput.runs.flatMap((run) => [
          [`${run.broker} ${run.format} QoS ${run.qos} #${run.repeat} baseline`, `${run.baseline.received}/${run.baseline.acked}`, int(run.baseline.rate), int(run.baseline.overallRate), int(run.baseline.publisherRate), fixed(run.baseline.cpuPer100k), fixed(run.baseline.publisherCpuPer100k), '–', '–', '–', '–'],
          [`${run.broker} ${run.format} QoS ${run.qos} #${run.repeat} daemon`, `${run.daemon.received}/${run.daemon.acked}`, int(run.daemon.rate), int(run.daemon.overallRate), int(run.daemon.publisherRate), fixed(run.daemon.cpuPer100kReceived), fixed(run.daemon.publisherCpuPer100k), int(run.daemon.windowsScored), fixed(run.daemon.meanBatch, 1), int(run.daemon.dropped), int(run.daemon.rejected)],
        ]),
      ),
    );
  }
  if (r.routes) {
    const x = r.routes;
    parts.push(
      '',
      `## Routes, shadow models and tracing: CPU per message against one model (${x.broker}, ${x.format}, QoS ${x.qos})`,
      '',
      `${int(r.settings.messages)} messages per run over ${int(x.streams)} single-channel streams (window ${x.window}, model family ${x.models.family}), ` +
        'from two publishers, half the streams each on its own topic family, the same for every setup. ' +
        '"one model": one subscription over both families; "two routes": one subscription per family, each naming its own model (two files, the same model); ' +
        '"live + shadow": one model with a candidate (`<model>.candidate.onnx`) scoring every batch in shadow; ' +
        `the candidate was trained on ${x.models.candidateData}; ` +
        '"tracing on": one model with OpenTelemetry tracing on (`tracing.enabled`, every batch traced: batch, inference and decide spans, plus one span per alert), ' +
        `exported over OTLP/HTTP to a receiver in the bench process (${int(x.otlpReceived?.spans ?? 0)} spans in ${int(x.otlpReceived?.exports ?? 0)} exports); the other setups run with tracing off, the default. ` +
        (x.before ? `"build before": "one model" run by the build of commit ${x.before.commit} (\`BENCH_BASELINE_REV=${x.before.rev}\`). ` : '') +
        'The setups run in turn within each repeat; medians are reported. Checked on each daemon\'s /metrics: ' +
        x.checks.join('; ') +
        '.',
      '',
      table(
        ['setup', 'msg/s', 'CPU s/100k', 'CPU ratio to one model', 'msg/s ratio', 'QoS 1 lost'],
        x.comparisons.map((c) => [c.setup, int(c.rate), fixed(c.cpuPer100k), fixed(c.cpuRatio), fixed(c.throughputRatio), String(c.lostQos1)]),
      ),
      '',
      table(
        ['run', 'received/acked', 'steady msg/s', 'CPU s/100k received', 'windows scored', 'by model', 'shadow windows scored', 'mean batch', 'rejected'],
        x.runs.map((run) => [
          `${run.setup} #${run.repeat}`,
          `${run.messagesReceived}/${run.measurement.acked}`,
          int(run.measurement.rate),
          fixed(run.cpuPer100kReceived),
          int(run.windowsScored),
          Object.entries(run.windowsByModel).map(([m, n]) => `${m} ${int(n)}`).join(', '),
          int(run.shadowWindowsScored),
          fixed(run.meanBatch, 1),
          int(run.rejected),
        ]),
      ),
    );
  }
  if (r.latency) {
    const l = r.latency;
    parts.push(
      '',
      `## Latency at half the sustained rate (${l.broker}, QoS 1)`,
      '',
      `${int(l.rate)} msg/s (${l.rateSource}; achieved ${int(l.achievedRate)}) for ${l.seconds} s; daemon CPU ${fixed(l.daemonCpuShare * 100, 0)} % of a core.`,
      '',
      table(
        ['measure', 'count', 'p50', 'p99', 'other'],
        [
          ['ingest→decision (sentinel_ingest_to_decision_seconds)', int(l.ingestToDecision.count), ms(l.ingestToDecision.p50), ms(l.ingestToDecision.p99), `p99 bucket ≤ ${ms(l.ingestToDecision.p99Bound)}, mean ${ms(l.ingestToDecision.mean)}`],
          ['publish→alert, injected spikes (outside, end to end)', `${l.publishToAlert.alerts}/${l.publishToAlert.faults}`, `${fixed(l.publishToAlert.p50Ms)} ms`, `${fixed(l.publishToAlert.p99Ms)} ms`, `max ${fixed(l.publishToAlert.maxMs)} ms`],
          ['publish→decision, same faults (alert detectedAt, 1 ms resolution)', `${l.publishToAlert.alerts}`, `${fixed(l.publishToDecision.p50Ms)} ms`, `${fixed(l.publishToDecision.p99Ms)} ms`, `max ${fixed(l.publishToDecision.maxMs)} ms`],
          ['inference run (sentinel_inference_duration_seconds)', int(l.inference.count), ms(l.inference.p50), ms(l.inference.p99), `mean batch ${fixed(l.meanBatchSize, 1)} windows`],
        ],
      ),
    );
  }
  if (r.overload) {
    const o = r.overload;
    parts.push(
      '',
      `## Overload at QoS 1 (${o.broker})`,
      '',
      'Publishers (own processes) push at twice the sustained rate while the daemon is paused for part of every 100 ms ' +
        '(SIGSTOP/SIGCONT, as a CFS CPU limit would throttle it), because mqtt.js publishers on this machine cannot outrun an unthrottled daemon. ' +
        '"overload" = acknowledged by the broker ÷ taken by the daemon during the push.',
      '',
      table(
        ['publishers', 'daemon duty', 'target push', 'pushed (acked) msg/s', 'daemon msg/s meanwhile', 'overload', 'backlog at end of push', 'acked', 'queued', 'lost', 'windows scored / expected', 'rejected', 'backpressure waits', 'exit code'],
        [[String(o.publishers), `${fixed(o.duty * 100, 0)} %`, int(o.targetRate), int(o.pushRate), int(o.daemonRateWhilePushing), `×${fixed(o.overloadFactor)}`, int(o.backlogAtPublisherDone), int(o.acked), int(o.queued), int(o.lost), `${int(o.windowsScored)} / ${int(o.windowsExpected)}`, int(o.rejected), int(o.backpressureWaits), String(o.daemonExitCode)]],
      ),
    );
  }
  if (r.memory) {
    const x = r.memory;
    parts.push(
      '',
      `## Memory: ${int(x.streams)} single-channel streams, window ${x.window} (${x.broker}, QoS 1)`,
      '',
      table(
        ['run', 'node flags', 'streams active', 'readings/stream', 'windows scored', 'idle RSS', 'RSS', 'peak RSS', 'heap used', 'external', 'RSS per stream'],
        x.runs.map((run) => [
          run.label,
          run.nodeArgs.join(' ') || '–',
          int(run.streamsActive),
          String(x.readingsPerStream),
          int(run.windowsScored),
          mb(run.idleRssBytes),
          mb(run.rssBytes),
          mb(run.peakRssBytes),
          mb(run.heapUsedBytes),
          mb(run.externalBytes),
          `${int(run.bytesPerStream)} B`,
        ]),
      ),
    );
  }
  if (r.model) {
    const figures = [...r.model.defaultModel, ...(r.model.previousDefault ?? []), r.model.pcaReference, r.model.jsReference];
    parts.push(
      '',
      '## Model speed (one thread) and training time',
      '',
      table(
        ['what', 'batch', 'per second', 'ms per batch', 'CPU/wall'],
        figures.map((f) => [f.what, String(f.batch), int(f.perSecond), fixed(f.msPerBatch, 3), fixed(f.cpuPerWall)]),
      ),
      '',
      `Training (parseTable + trainModel, ${r.model.training.rows} rows × ${r.model.training.channels} channels, window ${r.model.training.window}): ` +
        `median ${fixed(r.model.training.medianMs, 1)} ms, max ${fixed(r.model.training.maxMs, 1)} ms (first run includes JIT warm-up) over ${r.model.training.runs} runs.`,
    );
  }
  if (r.hotpath) {
    const base = r.hotpath[0]?.nsPerMessage ?? Number.NaN;
    parts.push(
      '',
      '## Per-message steps in isolation (one process, no broker)',
      '',
      'Where the daemon\'s CPU per message goes beyond the baseline\'s JSON.parse; 5-channel json-values payloads over 1000 streams.',
      '',
      table(
        ['step', 'ns/message', '× baseline JSON.parse'],
        r.hotpath.map((h) => [h.step, int(h.nsPerMessage), fixed(h.nsPerMessage / base)]),
      ),
    );
  }
  if (r.errors.length > 0) {
    parts.push('', '## Errors', '', ...r.errors.map((e) => `- ${e.section}: ${e.message}`));
  }
  return parts.join('\n') + '\n';
}
