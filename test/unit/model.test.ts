import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel, ModelError, type LoadModelOptions } from '../../src/model/scorer.js';
import { DEFAULT_MODEL } from '../support/model.js';

const options: LoadModelOptions = { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 2, maxBatch: 16 };

/** A copy of the default model whose manifest (and optionally ONNX bytes) a test may break. */
function brokenCopy(edit: (manifest: Record<string, unknown>) => void, onnx?: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-bad-model-'));
  const modelPath = join(dir, 'm.onnx');
  if (onnx) writeFileSync(modelPath, onnx);
  else copyFileSync(DEFAULT_MODEL, modelPath);
  const manifest = JSON.parse(readFileSync(DEFAULT_MODEL.replace('.onnx', '.json'), 'utf8')) as Record<string, unknown>;
  if (onnx) manifest.version = `sha256:${createHash('sha256').update(onnx).digest('hex')}`;
  edit(manifest);
  writeFileSync(join(dir, 'm.json'), JSON.stringify(manifest));
  return modelPath;
}

async function refusal(path: string): Promise<string> {
  try {
    const scorer = await loadModel(path, options);
    await scorer.release();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelError);
    return (err as Error).message;
  }
  throw new Error('expected the model to be refused');
}

describe('model stage', () => {
  it('loads the default model and scores a batch with per-channel contributions', async () => {
    const scorer = await loadModel(DEFAULT_MODEL, options);
    const { window, channels } = scorer.manifest;
    const input = new Float32Array(3 * window * channels.length).fill(1);
    const out = await scorer.score(input, 3);
    expect(out.scores).toHaveLength(3);
    expect(out.contributions).toHaveLength(3 * channels.length);
    expect(scorer.provider).toBe('cpu');
    await scorer.release();
  });

  it('falls back to CPU when the CUDA provider cannot be created, and says so', async () => {
    const fallbacks: string[] = [];
    const scorer = await loadModel(DEFAULT_MODEL, { ...options, executionProviders: ['cuda', 'cpu'], onFallback: (p) => fallbacks.push(p) });
    // On a GPU node CUDA loads; everywhere else the fallback must have been reported.
    if (scorer.provider === 'cpu') expect(fallbacks).toEqual(['cuda']);
    else expect(scorer.provider).toBe('cuda');
    await scorer.release();
  });

  it('refuses a missing manifest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-no-manifest-'));
    copyFileSync(DEFAULT_MODEL, join(dir, 'x.onnx'));
    expect(await refusal(join(dir, 'x.onnx'))).toMatch(/cannot read manifest/);
  });

  it('refuses a manifest that breaks the schema, naming the field', async () => {
    expect(await refusal(brokenCopy((m) => ((m.policy as Record<string, number>).raiseAfter = 0)))).toMatch(/policy\.raiseAfter/);
    expect(await refusal(brokenCopy((m) => delete m.channels))).toMatch(/channels/);
  });

  it('refuses a model file whose hash does not match the manifest version', async () => {
    expect(await refusal(brokenCopy((m) => (m.version = `sha256:${'0'.repeat(64)}`)))).toMatch(/does not match manifest version/);
  });

  it('refuses a corrupt ONNX file', async () => {
    expect(await refusal(brokenCopy(() => {}, Buffer.from('this is not a protobuf model at all')))).toMatch(/not a loadable ONNX model/);
  });

  it('refuses a manifest whose channels, window or tensor names disagree with the graph', async () => {
    // (Without the per-channel training stats and baseline, which would no longer match the channel list either.)
    const threeChannels = (m: Record<string, unknown>): void => {
      m.channels = ['a', 'b', 'c'];
      delete (m.training as Record<string, unknown>).stats;
      delete m.baseline;
    };
    expect(await refusal(brokenCopy(threeChannels))).toMatch(/channel dimension is 5, manifest lists 3/);
    expect(await refusal(brokenCopy((m) => (m.channels = ['a', 'b', 'c'])))).toMatch(/training\.stats\.mean: has 5 entries, expected one per channel \(3\)/);
    expect(await refusal(brokenCopy((m) => (m.window = 7)))).toMatch(/window dimension is 20, manifest says 7/);
    expect(await refusal(brokenCopy((m) => (m.input = { name: 'x' })))).toMatch(/no input named "x"/);
    expect(await refusal(brokenCopy((m) => (m.outputs = { score: 'score', contributions: 'nope' })))).toMatch(/no output named "nope"/);
  });
});
