/**
 * Model speed on one CPU thread: the default model through onnxruntime-node at batch 1024 (and the
 * daemon's default batch 256), a PCA-style reference graph over 256 inputs to calibrate this machine
 * against the figure quoted in the models issue, the trainer's own float64 JS scoring, and training time
 * of one SKAB-sized table.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { parseTable } from '../../src/offline/data/table.js';
import { SeededRandom } from '../../src/offline/sim/random.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { buildDefaultModel } from '../../src/offline/train/default-model.js';
import { ATTRIBUTE_INT, ONNX_IR_VERSION, ONNX_OPSET, TENSOR_FLOAT, TENSOR_INT64, onnxModelType } from '../../src/offline/train/onnx-proto.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import type { BenchContext } from '../context.js';
import { cpuSeconds } from '../../test/support/proc.js';
import { median } from '../report.js';

export interface SpeedFigure {
  what: string;
  batch: number;
  /** Windows (or samples) per second. */
  perSecond: number;
  /** Median milliseconds per run of one batch. */
  msPerBatch: number;
  /** Process CPU seconds per wall second while it ran (≈ 1 on one thread). */
  cpuPerWall: number;
}

export interface ModelResults {
  defaultModel: SpeedFigure[];
  /** The previous default family (window-pca-t2q) on the same data and window, at the same batches: the cost baseline. */
  previousDefault?: SpeedFigure[];
  pcaReference: SpeedFigure;
  jsReference: SpeedFigure;
  training: { rows: number; channels: number; window: number; runs: number; medianMs: number; maxMs: number };
}

const sessionOptions: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

export async function runModel(ctx: BenchContext): Promise<ModelResults> {
  const seconds = ctx.settings.modelSeconds;
  const manifest = JSON.parse(readFileSync('models/default.json', 'utf8')) as { window: number; channels: string[]; input: { name: string } };
  const windowValues = manifest.window * manifest.channels.length;
  const session = await ort.InferenceSession.create(readFileSync('models/default.onnx'), sessionOptions);
  const defaultModel: SpeedFigure[] = [];
  for (const batch of [1024, 256]) {
    const input = pumpWindows(batch, manifest.window);
    const feeds = { [manifest.input.name]: new ort.Tensor('float32', input, [batch, manifest.window, manifest.channels.length]) };
    const figure = await timeRuns(`default model (${windowValues} inputs), onnxruntime-node`, batch, seconds, () => session.run(feeds));
    defaultModel.push(figure);
    ctx.log(`  ${figure.what} batch ${batch}: ${Math.round(figure.perSecond).toLocaleString('en-US')} windows/s (${figure.msPerBatch.toFixed(3)} ms/batch)`);
  }
  await session.release();

  // The previous default family, trained on the default model's data: what the new family's cost is measured against.
  const previous = buildDefaultModel({ family: 'window-pca-t2q' });
  const previousSession = await ort.InferenceSession.create(previous.onnx, sessionOptions);
  const previousDefault: SpeedFigure[] = [];
  for (const batch of [1024, 256]) {
    const input = pumpWindows(batch, manifest.window);
    const feeds = { [previous.manifest.input.name]: new ort.Tensor('float32', input, [batch, manifest.window, manifest.channels.length]) };
    const figure = await timeRuns(`previous default family (window-pca-t2q, same data), onnxruntime-node`, batch, seconds, () => previousSession.run(feeds));
    previousDefault.push(figure);
    ctx.log(`  ${figure.what} batch ${batch}: ${Math.round(figure.perSecond).toLocaleString('en-US')} windows/s`);
  }
  await previousSession.release();

  const refSession = await ort.InferenceSession.create(pcaReferenceGraph(256, 8), sessionOptions);
  const refInput = new Float32Array(1024 * 256).map((_, i) => Math.sin(i));
  const refFeeds = { x: new ort.Tensor('float32', refInput, [1024, 256]) };
  const pcaReference = await timeRuns('PCA-style reference graph (256 inputs → 8 components), onnxruntime-node', 1024, seconds, () => refSession.run(refFeeds));
  await refSession.release();
  ctx.log(`  ${pcaReference.what}: ${Math.round(pcaReference.perSecond).toLocaleString('en-US')} samples/s`);

  const trained = buildDefaultModel();
  const jsInput = pumpWindows(1024, trained.model.window);
  const jsReference = await timeRuns('default model family, trainer float64 JS scoring', 1024, seconds, async () => trained.scoreWindows(jsInput, 1024));
  ctx.log(`  ${jsReference.what}: ${Math.round(jsReference.perSecond).toLocaleString('en-US')} windows/s`);

  const training = timeTraining(ctx.settings.quick ? 3 : 7);
  ctx.log(`  training 400 × 8 (window 20): median ${training.medianMs.toFixed(1)} ms, max ${training.maxMs.toFixed(1)} ms over ${training.runs} runs`);
  return { defaultModel, previousDefault, pcaReference, jsReference, training };
}

async function timeRuns(what: string, batch: number, seconds: number, run: () => Promise<unknown>): Promise<SpeedFigure> {
  for (let i = 0; i < 20; i++) await run();
  const times: number[] = [];
  const cpu0 = cpuSeconds(process.pid);
  const start = performance.now();
  let now = start;
  while (now - start < seconds * 1000) {
    await run();
    const t = performance.now();
    times.push(t - now);
    now = t;
  }
  const wall = (now - start) / 1000;
  return {
    what,
    batch,
    perSecond: (times.length * batch) / wall,
    msPerBatch: median(times),
    cpuPerWall: (cpuSeconds(process.pid) - cpu0) / wall,
  };
}

/** `batch` windows of simulated pump telemetry, [batch, window, 5] row-major. */
function pumpWindows(batch: number, window: number): Float32Array {
  const sim = new PumpSimulator({ seed: 99 });
  const rows = Array.from({ length: batch + window }, () => sim.next().values);
  const out = new Float32Array(batch * window * 5);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < window; t++) out.set(rows[b + t] as number[], (b * window + t) * 5);
  }
  return out;
}

/** score = Σ ((x − center) · P)² : a projection onto `k` components, the shape of a PCA anomaly score. */
function pcaReferenceGraph(inputs: number, k: number): Uint8Array {
  const random = new SeededRandom(5);
  const floats = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).map(() => random.normal()).buffer);
  const tensorType = (dims: Array<number | string>) => ({
    tensor_type: { elem_type: TENSOR_FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } },
  });
  const graph = {
    name: 'pca_reference',
    initializer: [
      { name: 'center', dims: [inputs], data_type: TENSOR_FLOAT, raw_data: floats(inputs) },
      { name: 'projection', dims: [inputs, k], data_type: TENSOR_FLOAT, raw_data: floats(inputs * k) },
      { name: 'axis', dims: [1], data_type: TENSOR_INT64, raw_data: new Uint8Array(new BigInt64Array([1n]).buffer) },
    ],
    node: [
      { op_type: 'Sub', input: ['x', 'center'], output: ['centred'], name: 'centred' },
      { op_type: 'MatMul', input: ['centred', 'projection'], output: ['z'], name: 'z' },
      { op_type: 'Mul', input: ['z', 'z'], output: ['z2'], name: 'z2' },
      { op_type: 'ReduceSum', input: ['z2', 'axis'], output: ['score'], name: 'score', attribute: [{ name: 'keepdims', type: ATTRIBUTE_INT, i: 0 }] },
    ],
    input: [{ name: 'x', type: tensorType(['batch', inputs]) }],
    output: [{ name: 'score', type: tensorType(['batch']) }],
  };
  const type = onnxModelType();
  return type.encode(type.fromObject({ ir_version: ONNX_IR_VERSION, opset_import: [{ domain: '', version: ONNX_OPSET }], producer_name: 'sentinel-bench', graph })).finish();
}

/** A SKAB-sized table (400 rows × 8 correlated channels, like one valve recording), parsed and trained `runs` times. */
function timeTraining(runs: number): ModelResults['training'] {
  const random = new SeededRandom(400);
  const lines = ['datetime,a1,a2,current,pressure,temperature,thermocouple,voltage,flow'];
  let load = 0;
  for (let i = 0; i < 400; i++) {
    load = 0.95 * load + 0.1 * random.normal();
    const cells = [0.2, 0.25, 2, 1, 70, 28, 230, 120].map((base, c) => (base * (1 + 0.05 * load * (c % 3 === 0 ? -1 : 1)) + 0.01 * base * random.normal()).toFixed(5));
    lines.push([new Date(Date.UTC(2020, 2, 9, 10, 0, i)).toISOString(), ...cells].join(','));
  }
  const bytes = Buffer.from(lines.join('\n') + '\n');
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    trainModel(parseTable(bytes, 'skab-sized.csv'), { name: 'skab-sized', createdAt: '2026-01-01T00:00:00.000Z' });
    times.push(performance.now() - start);
  }
  return { rows: 400, channels: 8, window: 20, runs, medianMs: median(times), maxMs: Math.max(...times) };
}
