/** Models for tests: the shipped default model, and small single-channel models trained on the spot. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestPathFor, manifestSchema, unscoredRows, type Manifest } from '../../src/model/manifest.js';
import { parseTable } from '../../src/offline/data/table.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { DEFAULT_MODEL_COOLDOWN_MS, DEFAULT_MODEL_ROWS, DEFAULT_MODEL_SEED } from '../../src/offline/train/default-model.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import { writeModelFiles } from '../../src/offline/train/write-model.js';

export const DEFAULT_MODEL = 'models/default.onnx';
export const DEFAULT_MANIFEST: Manifest = manifestSchema.parse(JSON.parse(readFileSync(manifestPathFor(DEFAULT_MODEL), 'utf8')));
/** Readings each stream gives the default model's baseline before any window is scored: a test's faults go after them. */
export const DEFAULT_WARMUP_ROWS = DEFAULT_MANIFEST.baseline?.warmupRows ?? 0;

/**
 * Windows scored for a stream of `rows` readings: none before its first full window, and with a per-stream
 * baseline (the default model) none while its first `baseline.warmupRows` readings are being learned.
 */
export function scoredWindows(manifest: Pick<Manifest, 'window' | 'baseline'>, rows: number): number {
  return Math.max(0, rows - unscoredRows(manifest));
}

/** Trains a one-channel model ("value") on a seeded sine with noise and writes it to a temp dir. */
export function trainSineModel(window = 8, rows = 600, name = 'sine'): string {
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const lines = ['ts,value'];
  for (let i = 0; i < rows; i++) lines.push(`${i * 1000},${(Math.sin(i / 10) + (random() - 0.5) * 0.2).toFixed(5)}`);
  const table = parseTable(Buffer.from(lines.join('\n') + '\n'), `${name}.csv`);
  const trained = trainModel(table, { window, name, createdAt: '2026-01-01T00:00:00.000Z' });
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-model-'));
  return writeModelFiles(join(dir, `${name}.onnx`), trained.onnx, trained.manifest).modelPath;
}

let windowPca: string | undefined;

/**
 * The default model's data, window, channels and cooldown in the window-pca-t2q family (the default model
 * before issue 12), written to a temp dir once: for tests that need every stream scored from its first
 * full window, with no per-stream baseline to learn first.
 */
export function windowPcaModel(): string {
  if (windowPca !== undefined) return windowPca;
  const table = parseTable(Buffer.from(simulateCsv({ seed: DEFAULT_MODEL_SEED, rows: DEFAULT_MODEL_ROWS }), 'utf8'), 'simulator');
  const trained = trainModel(table, {
    window: DEFAULT_MANIFEST.window,
    name: 'default',
    createdAt: DEFAULT_MANIFEST.createdAt,
    cooldownMs: DEFAULT_MODEL_COOLDOWN_MS,
    detector: { family: 'window-pca-t2q' },
  });
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-model-'));
  return (windowPca = writeModelFiles(join(dir, 'default.onnx'), trained.onnx, trained.manifest).modelPath);
}
