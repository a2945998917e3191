/** The model stage: loads an ONNX model with its manifest, checks the contract, and scores batches of windows. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { manifestPathFor, manifestSchema, sameBaselineRule, type Manifest } from './manifest.js';

export type ExecutionProvider = 'cuda' | 'cpu';

export interface ScoreOutput {
  /** One anomaly score per window. */
  scores: Float32Array;
  /** Per-channel contributions, [batch × channels] row-major, or null when the model has none. */
  contributions: Float32Array | null;
  /** Each test's score, [batch × tests] row-major, when the manifest declares `outputs.tests`; else null. */
  tests?: Float32Array | null;
  /** Each test's score per channel, [batch × tests × channels], with `tests`. */
  testChannels?: Float32Array | null;
}

/** What the batch stage needs from a model: its shape, and a scorer for a batch of windows. */
export interface Scorer {
  readonly manifest: Manifest;
  readonly provider: ExecutionProvider;
  /** `input` holds `batch` windows of manifest.window × channels float32 values, row-major. */
  score(input: Float32Array, batch: number): Promise<ScoreOutput>;
  release(): Promise<void>;
}

export class ModelError extends Error {
  /**
   * `incomplete`: file and manifest cannot be read or disagree (a copy may still be under way);
   * `invalid`: the model breaks the contract.
   */
  constructor(
    readonly file: string,
    message: string,
    readonly kind: 'incomplete' | 'invalid' = 'invalid',
  ) {
    super(`model ${file}: ${message}`);
    this.name = 'ModelError';
  }
}

export interface LoadModelOptions {
  executionProviders: readonly ExecutionProvider[];
  intraOpThreads: number;
  warmupRuns: number;
  /** Largest batch the caller will send; the warm-up runs it once. */
  maxBatch: number;
  /** Called when a provider cannot be used and the next one is tried. */
  onFallback?: (provider: ExecutionProvider, error: Error) => void;
}

export async function readManifest(modelPath: string): Promise<Manifest> {
  const path = manifestPathFor(modelPath);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ModelError(path, `cannot read manifest: ${(err as Error).message} — every model needs <name>.json beside <name>.onnx`, 'incomplete');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelError(path, `manifest is not valid JSON: ${(err as Error).message}`, 'incomplete');
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ModelError(path, `manifest breaks the contract: ${problems.join('; ')}`);
  }
  return parsed.data;
}

function describeShape(shape: ReadonlyArray<number | string>): string {
  return `[${shape.join(', ')}]`;
}

function isDynamic(dim: number | string | undefined): boolean {
  return typeof dim === 'string' || dim === -1 || dim === undefined;
}

/** Checks the session's declared inputs/outputs against the manifest; returns problems found. */
function checkSignature(session: ort.InferenceSession, manifest: Manifest): string[] {
  const problems: string[] = [];
  const input = session.inputMetadata.find((m) => m.name === manifest.input.name);
  if (session.inputMetadata.length !== 1) {
    problems.push(`expected exactly one input, found ${session.inputMetadata.length} (${session.inputNames.join(', ')})`);
  }
  if (!input) {
    problems.push(`no input named "${manifest.input.name}" (inputs: ${session.inputNames.join(', ')})`);
  } else if (!input.isTensor || input.type !== 'float32') {
    problems.push(`input "${input.name}" must be a float32 tensor, is ${input.isTensor ? input.type : 'not a tensor'}`);
  } else if (input.shape.length > 0) {
    const [b, w, c] = input.shape;
    if (input.shape.length !== 3) problems.push(`input shape ${describeShape(input.shape)} must be [batch, window, channels]`);
    else {
      if (!isDynamic(b)) problems.push(`input batch dimension must be dynamic, is ${b}`);
      if (!isDynamic(w) && w !== manifest.window) problems.push(`input window dimension is ${w}, manifest says ${manifest.window}`);
      if (!isDynamic(c) && c !== manifest.channels.length) {
        problems.push(`input channel dimension is ${c}, manifest lists ${manifest.channels.length} channels`);
      }
    }
  }
  const wanted: Array<[string, number]> = [[manifest.outputs.score, 1]];
  if (manifest.outputs.contributions) wanted.push([manifest.outputs.contributions, 2]);
  if (manifest.outputs.tests) wanted.push([manifest.outputs.tests.scores, 2], [manifest.outputs.tests.channels, 3]);
  for (const [name, rank] of wanted) {
    const meta = session.outputMetadata.find((m) => m.name === name);
    if (!meta) problems.push(`no output named "${name}" (outputs: ${session.outputNames.join(', ')})`);
    else if (!meta.isTensor || meta.type !== 'float32') problems.push(`output "${name}" must be a float32 tensor`);
    else if (meta.shape.length > 0 && meta.shape.length !== rank) {
      problems.push(`output "${name}" has shape ${describeShape(meta.shape)}, expected rank ${rank}`);
    }
  }
  return problems;
}

class OnnxScorer implements Scorer {
  private readonly windowSize: number;
  /** [batch (per run), window, channels]. */
  private readonly dims: readonly [number, number, number];
  private readonly tests: number;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly manifest: Manifest,
    readonly provider: ExecutionProvider,
  ) {
    this.windowSize = manifest.window * manifest.channels.length;
    this.dims = [0, manifest.window, manifest.channels.length];
    this.tests = manifest.outputs.tests?.names.length ?? 0;
  }

  /** Runs in progress: the daemon's batches and the scoring API's share the session. */
  private running = 0;
  private released = false;
  private idle: (() => void) | null = null;

  async score(input: Float32Array, batch: number): Promise<ScoreOutput> {
    if (this.released) throw new Error(`model ${this.manifest.version} was replaced; score with the current one`);
    const data = input.length === batch * this.windowSize ? input : input.subarray(0, batch * this.windowSize);
    // Dims of its own per run: the tensor keeps the array, and runs of the batcher and the API overlap.
    const feeds = { [this.manifest.input.name]: new ort.Tensor('float32', data, [batch, this.dims[1], this.dims[2]]) };
    this.running++;
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(feeds);
    } finally {
      if (--this.running === 0) this.idle?.();
    }
    const scoreTensor = out[this.manifest.outputs.score];
    if (!scoreTensor || scoreTensor.type !== 'float32' || scoreTensor.size !== batch) {
      throw new Error(`model returned ${scoreTensor?.size ?? 'no'} scores for a batch of ${batch}`);
    }
    const name = this.manifest.outputs.contributions;
    const contribTensor = name ? out[name] : undefined;
    const channels = this.manifest.channels.length;
    const contributions =
      contribTensor && contribTensor.type === 'float32' && contribTensor.size === batch * channels
        ? (contribTensor.data as Float32Array)
        : null;
    const declared = this.manifest.outputs.tests;
    if (declared === undefined) return { scores: scoreTensor.data as Float32Array, contributions };
    const testTensor = out[declared.scores];
    const channelTensor = out[declared.channels];
    const tests = testTensor && testTensor.type === 'float32' && testTensor.size === batch * this.tests ? (testTensor.data as Float32Array) : null;
    const testChannels =
      channelTensor && channelTensor.type === 'float32' && channelTensor.size === batch * this.tests * channels ? (channelTensor.data as Float32Array) : null;
    return { scores: scoreTensor.data as Float32Array, contributions, tests, testChannels };
  }

  /** Releases the session once no run is using it (a hot swap must not free it under a scoring API run). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.running > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.session.release();
  }
}

/** Why a new model cannot replace the running one in place, or null when it can. */
export function swapIncompatibility(current: Manifest, next: Manifest): string | null {
  if (next.window !== current.window) return `window ${next.window} differs from the running ${current.window}`;
  if (next.channels.join('\u0000') !== current.channels.join('\u0000')) {
    return `channels [${next.channels.join(', ')}] differ from the running [${current.channels.join(', ')}]`;
  }
  if (JSON.stringify(next.normalization) !== JSON.stringify(current.normalization)) return 'normalization differs from the running model';
  // The window store keeps each stream's baseline by the running model's rule: another rule needs a
  // restart. A retrained model's scale floors differ, and the store takes them over (setBaselineFloors).
  if (!sameBaselineRule(next.baseline, current.baseline)) return 'per-stream baseline rule differs from the running model';
  return null;
}

/** Loads a model file and its manifest, validated and warmed up. */
export async function loadModel(modelPath: string, options: LoadModelOptions): Promise<Scorer> {
  const manifest = await readManifest(modelPath);
  let bytes: Buffer;
  try {
    bytes = await readFile(modelPath);
  } catch (err) {
    throw new ModelError(modelPath, `cannot read model file: ${(err as Error).message}`, 'incomplete');
  }
  return createScorer(bytes, manifest, modelPath, options);
}

/**
 * Checks the bytes against the manifest and creates the session on the first execution provider
 * that works (onnxruntime-node throws rather than falling back, so the fallback is ours), then warms it up.
 */
export async function createScorer(bytes: Uint8Array, manifest: Manifest, source: string, options: LoadModelOptions): Promise<Scorer> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (digest !== manifest.version) {
    throw new ModelError(source, `file hash ${digest} does not match manifest version ${manifest.version} (file replaced or corrupt?)`, 'incomplete');
  }
  const providers = options.executionProviders.includes('cpu') ? options.executionProviders : [...options.executionProviders, 'cpu' as const];
  let session: ort.InferenceSession | null = null;
  let provider: ExecutionProvider = 'cpu';
  for (const candidate of providers) {
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: [candidate],
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      provider = candidate;
      break;
    } catch (err) {
      if (candidate === 'cpu') throw new ModelError(source, `not a loadable ONNX model: ${(err as Error).message}`);
      options.onFallback?.(candidate, err as Error);
    }
  }
  if (session === null) throw new ModelError(source, 'no execution provider could load the model');
  const problems = checkSignature(session, manifest);
  if (problems.length > 0) {
    await session.release();
    throw new ModelError(source, `breaks the model contract: ${problems.join('; ')}`);
  }
  const scorer = new OnnxScorer(session, manifest, provider);
  try {
    await warmUp(scorer, options);
  } catch (err) {
    await session.release();
    throw new ModelError(source, `failed its warm-up run: ${(err as Error).message}`);
  }
  return scorer;
}

async function warmUp(scorer: Scorer, options: LoadModelOptions): Promise<void> {
  const { window, channels } = scorer.manifest;
  const input = new Float32Array(options.maxBatch * window * channels.length);
  for (let run = 0; run < options.warmupRuns; run++) {
    const batch = run === 0 ? 1 : options.maxBatch;
    const { scores, contributions, tests: testScores, testChannels } = await scorer.score(input, batch);
    if (scores.length !== batch) throw new Error(`expected ${batch} scores, got ${scores.length}`);
    if (scorer.manifest.outputs.contributions && contributions === null) {
      throw new Error(`output "${scorer.manifest.outputs.contributions}" is not [batch, ${channels.length}]`);
    }
    const tests = scorer.manifest.outputs.tests;
    if (tests !== undefined) {
      if (!testScores || !testChannels) {
        throw new Error(`outputs "${tests.scores}" and "${tests.channels}" are not [batch, ${tests.names.length}] and [batch, ${tests.names.length}, ${channels.length}]`);
      }
    }
  }
}
