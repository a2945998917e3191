/**
 * Per-stream baselines: each stream's own location and scale per channel, learned from its first
 * readings and then followed robustly, so one model serves assets at different operating points.
 *
 * The rule is declared in the model manifest (`baseline`) and is the same code in the daemon (the
 * window store's slabs) and in the trainer (which fits the model on baseline-normalised windows):
 * - warm-up: the first `warmupRows` rows are averaged (running mean and variance); no window is scored;
 * - then each row that leaves the window updates the baseline with weight 1 − 2^(−1/halfLifeRows), its
 *   deviation clipped at `clip` × scale (a spike or a fault moves it little), unless the stream's alert
 *   is open (the baseline is held) — for at most `maxHoldRows` rows, after which a lasting change is
 *   taken as the new normal;
 * - the model sees (reading − location) / max(scale, minScale) per channel.
 */
import type { BaselineSpec } from '../model/manifest.js';

export { sameBaselineRule } from '../model/manifest.js';

/** Deviations are clipped only once this many rows have set a first scale. */
const CLIP_AFTER_ROWS = 10;

export class BaselineRule {
  readonly warmupRows: number;
  /** EWMA weight of a row after warm-up (0: the baseline stays as warm-up left it). */
  readonly alpha: number;
  readonly clip: number;
  readonly minScale: Float64Array;
  readonly maxHoldRows: number;

  constructor(readonly spec: BaselineSpec) {
    this.warmupRows = spec.warmupRows;
    this.alpha = spec.halfLifeRows === null ? 0 : 1 - Math.pow(2, -1 / spec.halfLifeRows);
    this.clip = spec.clip;
    this.minScale = Float64Array.from(spec.minScale);
    this.maxHoldRows = spec.maxHoldRows ?? Number.POSITIVE_INFINITY;
  }

  /** The scale a variance stands for on channel c. */
  scale(variance: number, c: number): number {
    const s = Math.sqrt(variance);
    const floor = this.minScale[c] as number;
    return s > floor ? s : floor;
  }

  /**
   * Learns one row (`values` from `v0`, one per channel) into the state at `s0` of `loc` and `vars`;
   * `learned` is how many rows the state holds before this one. No allocation: the daemon's hot path.
   */
  learn(loc: Float32Array, vars: Float32Array, s0: number, values: ArrayLike<number>, v0: number, channels: number, learned: number): void {
    if (learned === 0) {
      for (let c = 0; c < channels; c++) {
        loc[s0 + c] = values[v0 + c] as number;
        vars[s0 + c] = 0;
      }
      return;
    }
    const alpha = learned < this.warmupRows ? 1 / (learned + 1) : this.alpha;
    if (alpha === 0) return;
    const clipping = learned >= CLIP_AFTER_ROWS;
    for (let c = 0; c < channels; c++) {
      const m = loc[s0 + c] as number;
      const v = vars[s0 + c] as number;
      let d = (values[v0 + c] as number) - m;
      if (clipping) {
        const limit = this.clip * this.scale(v, c);
        if (d > limit) d = limit;
        else if (d < -limit) d = -limit;
      }
      loc[s0 + c] = m + alpha * d;
      vars[s0 + c] = (1 - alpha) * (v + alpha * d * d);
    }
  }
}

export interface BaselineTrack {
  /** Per channel, per row: the location (NaN while warming up or filling the first window). */
  loc: Float64Array[];
  /** Per channel, per row: 1 / scale (NaN likewise). */
  invScale: Float64Array[];
}

/**
 * The rule applied to one recorded stream, row by row as the window store applies it with no alert
 * open: per row i, the location and scale the window ending at row i is normalised with, or NaN while
 * the stream is warming up. The trainer fits and calibrates on exactly these windows: the window
 * ending at row i, normalised, is fround((fround(x) − loc[i]) × invScale[i]) per reading x.
 */
export function baselineTrack(rule: BaselineRule, columns: readonly Float64Array[], window: number, rows: number): BaselineTrack {
  const channels = columns.length;
  const loc = new Float32Array(channels);
  const vars = new Float32Array(channels);
  // Float32, as the window store holds readings.
  const row = new Float32Array(channels);
  const outLoc = columns.map(() => new Float64Array(rows).fill(Number.NaN));
  const outInv = columns.map(() => new Float64Array(rows).fill(Number.NaN));
  let learned = 0;
  let ahead = 0;
  let filled = 0;
  for (let i = 0; i < rows; i++) {
    // The row leaving the window (when it is full) is learned before this one is written over it.
    if (learned >= rule.warmupRows && filled === window) {
      if (ahead > 0) ahead--;
      else {
        for (let c = 0; c < channels; c++) row[c] = columns[c]![i - window]!;
        rule.learn(loc, vars, 0, row, 0, channels, learned++);
      }
    }
    if (filled < window) filled++;
    if (learned < rule.warmupRows) {
      for (let c = 0; c < channels; c++) row[c] = columns[c]![i]!;
      rule.learn(loc, vars, 0, row, 0, channels, learned++);
      // Rows still in the window were learned during warm-up: they are not learned again when they leave.
      if (learned === rule.warmupRows) ahead = filled;
      continue;
    }
    if (filled < window) continue;
    for (let c = 0; c < channels; c++) {
      outLoc[c]![i] = loc[c]!;
      outInv[c]![i] = 1 / rule.scale(vars[c]!, c);
    }
  }
  return { loc: outLoc, invScale: outInv };
}

