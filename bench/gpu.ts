/**
 * `npm run bench:gpu`: the CUDA path on a machine with an NVIDIA GPU. Loads the default model through the
 * daemon's own loader with providers ["cuda"], checks its scores against a CPU session on the same
 * windows, times both per batch size, and runs the whole daemon (embedded broker, telemetry with a fault)
 * on ["cuda", "cpu"]. Results go to bench/results/gpu.{json,md} (or BENCH_GPU_OUT). Exits 1 when the
 * CUDA provider could not be used or a check failed, so a silent CPU fallback cannot pass for a GPU run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import * as ort from 'onnxruntime-node';
import { alertSchema, type Alert } from '../src/alert/alert.js';
import { validateConfig } from '../src/config/load.js';
import { Daemon } from '../src/daemon.js';
import { loadModel, type ExecutionProvider, type Scorer } from '../src/model/scorer.js';
import { createLogger } from '../src/observe/log.js';
import { PumpSimulator, type FaultPlan } from '../src/offline/sim/pump.js';
import { median } from './report.js';
import { cpuSeconds } from '../test/support/proc.js';

const MODEL = 'models/default.onnx';
const outDir = process.env.BENCH_GPU_OUT ?? 'bench/results';
const seconds = Number(process.env.BENCH_GPU_SECONDS ?? 3);

interface SpeedRow {
  provider: ExecutionProvider;
  batch: number;
  windowsPerSecond: number;
  msPerBatchMedian: number;
  msPerBatchP99: number;
  cpuPerWall: number;
}

interface GpuResults {
  startedAt: string;
  onnxruntime: string;
  gpu: string | null;
  provider: { asked: ExecutionProvider[]; got: ExecutionProvider; fallbackError: string | null };
  parity: { windows: number; maxAbsScoreDiff: number; maxRelScoreDiff: number; maxAbsContributionDiff: number; aboveRaiseCpu: number; aboveRaiseCuda: number };
  speed: SpeedRow[];
  daemon: {
    providerInReadyz: string | null;
    modelInfoMetric: string | null;
    readings: number;
    windowsScored: number;
    alerts: string[];
    drained: boolean;
  } | null;
  checks: Array<{ what: string; ok: boolean; detail: string }>;
}

function pumpWindows(batch: number, window: number, faults: FaultPlan[]): Float32Array {
  const sim = new PumpSimulator({ seed: 41, faults });
  const rows = Array.from({ length: batch + window }, () => sim.next().values);
  const out = new Float32Array(batch * window * 5);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < window; t++) out.set(rows[b + t] as number[], (b * window + t) * 5);
  }
  return out;
}

async function load(providers: ExecutionProvider[], maxBatch: number, fallbacks: string[]): Promise<Scorer> {
  return loadModel(MODEL, {
    executionProviders: providers,
    intraOpThreads: 1,
    warmupRuns: 3,
    maxBatch,
    onFallback: (provider, err) => fallbacks.push(`${provider}: ${err.message}`),
  });
}

async function timeScorer(scorer: Scorer, batch: number): Promise<SpeedRow> {
  const input = pumpWindows(batch, scorer.manifest.window, []);
  for (let i = 0; i < 10; i++) await scorer.score(input, batch);
  const times: number[] = [];
  const cpu0 = cpuSeconds(process.pid);
  const start = performance.now();
  let now = start;
  while (now - start < seconds * 1000 || times.length < 20) {
    await scorer.score(input, batch);
    const t = performance.now();
    times.push(t - now);
    now = t;
  }
  const wall = (now - start) / 1000;
  const sorted = [...times].sort((a, b) => a - b);
  return {
    provider: scorer.provider,
    batch,
    windowsPerSecond: (times.length * batch) / wall,
    msPerBatchMedian: median(times),
    msPerBatchP99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] as number,
    cpuPerWall: (cpuSeconds(process.pid) - cpu0) / wall,
  };
}

async function parity(cuda: Scorer, cpu: Scorer, batch: number): Promise<GpuResults['parity']> {
  const input = pumpWindows(batch, cuda.manifest.window, [
    { kind: 'spike', channel: 2, start: 500, length: 40 },
    { kind: 'drift', channel: 3, start: 1500, length: 600 },
    { kind: 'noise', channel: 0, start: 3000, length: 200 },
  ]);
  const a = await cpu.score(input, batch);
  const b = await cuda.score(input, batch);
  let maxAbs = 0;
  let maxRel = 0;
  let maxContrib = 0;
  const raise = cuda.manifest.policy.raiseThreshold;
  let aboveCpu = 0;
  let aboveCuda = 0;
  for (let i = 0; i < batch; i++) {
    const x = a.scores[i] as number;
    const y = b.scores[i] as number;
    maxAbs = Math.max(maxAbs, Math.abs(x - y));
    maxRel = Math.max(maxRel, Math.abs(x - y) / Math.max(1, Math.abs(x)));
    if (x >= raise) aboveCpu++;
    if (y >= raise) aboveCuda++;
  }
  if (a.contributions && b.contributions) {
    for (let i = 0; i < a.contributions.length; i++) maxContrib = Math.max(maxContrib, Math.abs((a.contributions[i] as number) - (b.contributions[i] as number)));
  }
  return { windows: batch, maxAbsScoreDiff: maxAbs, maxRelScoreDiff: maxRel, maxAbsContributionDiff: maxContrib, aboveRaiseCpu: aboveCpu, aboveRaiseCuda: aboveCuda };
}

/** The whole daemon on ["cuda", "cpu"]: embedded broker, three pumps, one spike; returns what an operator would see. */
async function runDaemon(): Promise<NonNullable<GpuResults['daemon']>> {
  const config = validateConfig({
    nodeName: 'gpu-bench',
    broker: { url: null, embedded: { host: '127.0.0.1', port: 0 } },
    subscriptions: [{ topic: 'sensors/+/telemetry', format: 'json-values', qos: 1 }],
    http: { host: '127.0.0.1', port: 0 },
    model: { path: MODEL, executionProviders: ['cuda', 'cpu'] },
    outbox: { path: join(mkdtempSync(join(tmpdir(), 'sentinel-gpu-')), 'outbox.jsonl') },
    log: { level: 'warn' },
  });
  const daemon = new Daemon(config, createLogger(config.log.level));
  await daemon.start();
  const client = await mqtt.connectAsync(daemon.brokerUrl, { protocolVersion: 4, clientId: `sentinel-gpu-bench-${process.pid}` });
  const alerts: Alert[] = [];
  client.on('message', (_topic, payload) => alerts.push(alertSchema.parse(JSON.parse(payload.toString()))));
  await client.subscribeAsync('sentinel/alerts/#', { qos: 1 });
  const readyz = (await (await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`)).json()) as { provider?: string | null };
  const pumps = [
    { id: 'pump-1', sim: new PumpSimulator({ seed: 1, faults: [{ kind: 'spike', channel: 2, start: 150, length: 12 }] }) },
    { id: 'pump-2', sim: new PumpSimulator({ seed: 2, faults: [] }) },
    { id: 'pump-3', sim: new PumpSimulator({ seed: 3, faults: [] }) },
  ];
  const rows = 400;
  for (let row = 0; row < rows; row++) {
    await Promise.all(
      pumps.map((p) => {
        const r = p.sim.next();
        const payload = { ts: r.ts, values: Object.fromEntries(p.sim.channels.map((c, i) => [c, r.values[i]])) };
        return client.publishAsync(`sensors/${p.id}/telemetry`, JSON.stringify(payload), { qos: 1 });
      }),
    );
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && alerts.length < 2) await new Promise((r) => setTimeout(r, 50));
  const metrics = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
  const modelInfo = metrics.split('\n').find((l) => l.startsWith('sentinel_model_info{')) ?? null;
  const drained = await daemon.stop();
  const totals = await daemon.totals();
  await client.endAsync();
  return {
    providerInReadyz: readyz.provider ?? null,
    modelInfoMetric: modelInfo,
    readings: Number(totals.queued ?? 0),
    windowsScored: Number(totals.scored ?? 0),
    alerts: alerts.map((a) => `${a.type}:${a.streamId}${a.type === 'raised' ? `:${a.topChannels[0]?.channel ?? '-'}` : ''}`),
    drained,
  };
}

function gpuName(): string | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }).trim();
    return out ? `${out.split('\n')[0]} (name, driver)` : null;
  } catch {
    return null;
  }
}

function markdown(r: GpuResults): string {
  const n = (v: number): string => Math.round(v).toLocaleString('en-US');
  const lines = [
    '# Sentinel on the CUDA execution provider',
    '',
    `Run ${r.startedAt}, onnxruntime-node ${r.onnxruntime}${r.gpu ? `, ${r.gpu}` : ''}. Provider asked ${JSON.stringify(r.provider.asked)}, got **${r.provider.got}**.`,
    '',
    '## Checks',
    '',
    '| check | ok | detail |',
    '| --- | --- | --- |',
    ...r.checks.map((c) => `| ${c.what} | ${c.ok ? 'yes' : '**no**'} | ${c.detail.replace(/\|/g, '\\|')} |`),
    '',
    '## Scoring speed (default model, one process, CPU session on 1 intra-op thread)',
    '',
    '| provider | batch | windows/s | ms/batch p50 | ms/batch p99 | CPU s per wall s |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.speed.map((s) => `| ${s.provider} | ${s.batch} | ${n(s.windowsPerSecond)} | ${s.msPerBatchMedian.toFixed(3)} | ${s.msPerBatchP99.toFixed(3)} | ${s.cpuPerWall.toFixed(2)} |`),
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<number> {
  const results: GpuResults = {
    startedAt: new Date().toISOString(),
    onnxruntime: ort.env.versions.node ?? 'unknown',
    gpu: gpuName(),
    provider: { asked: ['cuda'], got: 'cpu', fallbackError: null },
    parity: { windows: 0, maxAbsScoreDiff: NaN, maxRelScoreDiff: NaN, maxAbsContributionDiff: NaN, aboveRaiseCpu: 0, aboveRaiseCuda: 0 },
    speed: [],
    daemon: null,
    checks: [],
  };
  const check = (what: string, ok: boolean, detail: string): void => {
    results.checks.push({ what, ok, detail });
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${detail}`);
  };
  const batches = [256, 1024, 4096, 16384, 65536];
  const fallbacks: string[] = [];
  const cuda = await load(['cuda'], Math.max(...batches), fallbacks);
  results.provider.got = cuda.provider;
  results.provider.fallbackError = fallbacks[0] ?? null;
  check('session on CUDA', cuda.provider === 'cuda', cuda.provider === 'cuda' ? 'created and warmed up' : `fell back to cpu: ${fallbacks.join('; ')}`);
  const cpu = await load(['cpu'], Math.max(...batches), []);
  if (cuda.provider === 'cuda') {
    results.parity = await parity(cuda, cpu, 4096);
    const p = results.parity;
    check('CUDA scores match CPU', p.maxRelScoreDiff < 1e-3 && p.aboveRaiseCpu === p.aboveRaiseCuda,
      `max |Δscore| ${p.maxAbsScoreDiff.toExponential(2)} (relative ${p.maxRelScoreDiff.toExponential(2)}), max |Δcontribution| ${p.maxAbsContributionDiff.toExponential(2)}, windows above raise threshold ${p.aboveRaiseCuda} (CUDA) vs ${p.aboveRaiseCpu} (CPU) of ${p.windows}`);
    for (const batch of batches) {
      for (const scorer of [cpu, cuda]) {
        const row = await timeScorer(scorer, batch);
        results.speed.push(row);
        console.log(`  ${row.provider} batch ${batch}: ${Math.round(row.windowsPerSecond).toLocaleString('en-US')} windows/s, p50 ${row.msPerBatchMedian.toFixed(3)} ms`);
      }
    }
  }
  await cuda.release();
  await cpu.release();

  const daemon = await runDaemon();
  results.daemon = daemon;
  check('daemon reports the provider', daemon.providerInReadyz === 'cuda' && (daemon.modelInfoMetric ?? '').includes('provider="cuda"'),
    `/readyz provider ${daemon.providerInReadyz}; ${daemon.modelInfoMetric}`);
  check('daemon on CUDA alerts the fault and drains', daemon.alerts.join(',') === 'raised:pump-1:pressure,resolved:pump-1' && daemon.drained && daemon.windowsScored === daemon.readings - 3 * 19,
    `${daemon.readings} readings, ${daemon.windowsScored} windows scored, alerts [${daemon.alerts.join(', ')}], drained ${daemon.drained}`);

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'gpu.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(outDir, 'gpu.md'), markdown(results));
  console.log(`results: ${join(outDir, 'gpu.json')}, ${join(outDir, 'gpu.md')}`);
  return results.checks.every((c) => c.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
