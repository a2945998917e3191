/** The default model (models/default.onnx + default.json), built from seeded simulator data, byte for byte. */
import { fileURLToPath } from 'node:url';
import { parseTable } from '../data/table.js';
import { simulateCsv } from '../sim/record.js';
import { trainModel, type TrainedModel } from './trainer.js';

export const DEFAULT_MODEL_SEED = 20240101;
// Three compressed demand cycles (1440 rows each) so the fit sees the whole load range.
export const DEFAULT_MODEL_ROWS = 4320;
export const DEFAULT_MODEL_WINDOW = 20;
export const DEFAULT_MODEL_COOLDOWN_MS = 120_000;
/** A window flatter than 1/300 of the flattest training window is stuck (the simulator's sensors are continuous). */
export const SIMULATOR_STUCK_MULTIPLIER = 300;

/**
 * The default model: the default family's preset (baseline-tests) trained as `sentinel train` would on the
 * recorded simulator data, with the stuck test on (SKAB's quantised channels need it off; the simulator's do not).
 */
export function buildDefaultModel(options: { family?: 'window-pca-t2q' } = {}): TrainedModel {
  const csv = simulateCsv({ seed: DEFAULT_MODEL_SEED, rows: DEFAULT_MODEL_ROWS });
  const source = `simulator seed=${DEFAULT_MODEL_SEED} rows=${DEFAULT_MODEL_ROWS}`;
  const table = parseTable(Buffer.from(csv, 'utf8'), source);
  // createdAt is the end of the training data rather than the wall clock, so reruns are identical.
  const createdAt = new Date(table.timestamps![table.rows - 1]!).toISOString();
  // A cooldown keeps one fault from raising twice when its score dips and recovers (the window-pca-t2q default's noise bursts did).
  return trainModel(table, {
    window: DEFAULT_MODEL_WINDOW,
    name: 'default',
    source,
    createdAt,
    cooldownMs: DEFAULT_MODEL_COOLDOWN_MS,
    // `family`: the same data in the previous default family (the bench's cost baseline, tests of that family).
    detector: options.family === undefined ? { stuckMultiplier: SIMULATOR_STUCK_MULTIPLIER } : { family: options.family },
  });
}

export function defaultModelPath(): string {
  return fileURLToPath(new URL('../../../models/default.onnx', import.meta.url));
}
