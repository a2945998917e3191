/** A fake scorer for the API tests: score = sum of the window's values, contributions = each channel's sum; records each run. */
import { readFileSync } from 'node:fs';
import { manifestPathFor, manifestSchema, type Manifest } from '../../src/model/manifest.js';
import type { ScoreOutput, Scorer } from '../../src/model/scorer.js';
import { windowPcaModel } from './model.js';

/**
 * The manifest the API tests serve: the default model's data, channels and window without a per-stream
 * baseline (window-pca-t2q), so that raw readings are scored; a baseline model refuses them (api-server.test.ts).
 */
export const defaultManifest: Manifest = manifestSchema.parse(JSON.parse(readFileSync(manifestPathFor(windowPcaModel()), 'utf8')));

export class FakeScorer implements Scorer {
  readonly provider = 'cpu' as const;
  readonly runs: number[] = [];
  /** When set, each run waits for this before answering. */
  gate: Promise<void> | null = null;
  failNext = false;

  constructor(readonly manifest: Manifest = defaultManifest) {}

  async score(input: Float32Array, batch: number): Promise<ScoreOutput> {
    this.runs.push(batch);
    if (this.gate !== null) await this.gate;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('model run failed');
    }
    const width = this.manifest.channels.length;
    const per = this.manifest.window * width;
    const scores = new Float32Array(batch);
    const contributions = new Float32Array(batch * width);
    for (let b = 0; b < batch; b++) {
      for (let k = 0; k < per; k++) {
        const v = input[b * per + k] as number;
        scores[b] = (scores[b] as number) + v;
        contributions[b * width + (k % width)] = (contributions[b * width + (k % width)] as number) + v;
      }
    }
    return { scores, contributions };
  }

  async release(): Promise<void> {}
}

/** A window of the default model's shape (20 rows × 5 channels), every value `v` unless `at` says otherwise. */
export function rows(v = 1, window = 20, channels = 5): number[][] {
  return Array.from({ length: window }, () => Array.from({ length: channels }, () => v));
}
