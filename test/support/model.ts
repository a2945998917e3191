/** Models for tests: the shipped default model, and small single-channel models trained on the spot. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTable } from '../../src/offline/data/table.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import { writeModelFiles } from '../../src/offline/train/write-model.js';

export const DEFAULT_MODEL = 'models/default.onnx';

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
