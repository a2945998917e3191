/**
 * Models the bench trains on the spot with the project's trainer: one channel, window 32, fitted to the
 * seeded noisy sine that lib/telemetry.ts publishes for json-value streams, so its traffic is normal.
 */
import { copyFileSync } from 'node:fs';
import { manifestPathFor, type Manifest } from '../../src/model/manifest.js';
import { parseTable } from '../../src/offline/data/table.js';
import { SeededRandom } from '../../src/offline/sim/random.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import { writeModelFiles } from '../../src/offline/train/write-model.js';

/** Window of the single-channel models (issue 13: "window 32"). */
export const SINE_WINDOW = 32;

/** A seeded sine with noise, the same shape lib/telemetry.ts publishes for json-value streams. */
function sineTable(rows: number, seed: number): Buffer {
  const random = new SeededRandom(seed);
  const lines = ['ts,value'];
  for (let i = 0; i < rows; i++) lines.push(`${i * 1000},${(Math.sin(i / 10) + (random.uniform() - 0.5) * 0.2).toFixed(5)}`);
  return Buffer.from(lines.join('\n') + '\n');
}

/**
 * Trains a single-channel window-32 model on 2,000 rows of the sine drawn with `seed` and writes it
 * (ONNX and manifest) to `modelPath`. Another seed gives another ONNX file with the same window and channel.
 */
export function trainSineModel(modelPath: string, name: string, seed: number): Manifest {
  const trained = trainModel(parseTable(sineTable(2000, seed), `${name}.csv`), { window: SINE_WINDOW, name, createdAt: '2026-01-01T00:00:00.000Z' });
  writeModelFiles(modelPath, trained.onnx, trained.manifest);
  return trained.manifest;
}

/** Copies a model and its manifest (the version, the ONNX file's hash, stays true). */
export function copyModel(from: string, to: string): void {
  copyFileSync(from, to);
  copyFileSync(manifestPathFor(from), manifestPathFor(to));
}

