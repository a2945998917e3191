/** Sets the decision policy from scores on held-out normal data (never from labels). */
import type { DecisionPolicy } from '../../model/manifest.js';
import { DEFAULT_DETECTOR, type PolicyOptions } from './detector.js';

export const RAISE_AFTER = 1;

export interface Calibration {
  policy: DecisionPolicy;
  figures: Record<string, number>;
}

/**
 * `heldOut`: one score per held-out window, in time order. The raise threshold sits a multiple above
 * a held-out quantile because held-out normal data under-represents slow drift (temperature, wear);
 * the multiple, the clear band and the resolve count are chosen by leave-one-file-out (docs/models.md).
 */
export function calibrate(heldOut: Float64Array, options: PolicyOptions = DEFAULT_DETECTOR): Calibration {
  if (heldOut.length === 0) throw new RangeError('calibration needs at least one held-out window');
  const sorted = Float64Array.from(heldOut).sort();
  const reference = quantile(sorted, options.thresholdQuantile);
  const raiseThreshold = raiseThresholdFrom(reference, options.thresholdMultiplier);
  let alarmWindows = 0;
  for (const s of heldOut) if (s >= raiseThreshold) alarmWindows++;
  return {
    policy: {
      raiseThreshold,
      clearThreshold: raiseThreshold * options.clearRatio,
      raiseAfter: RAISE_AFTER,
      resolveAfter: options.resolveAfter,
      cooldownMs: 0,
    },
    figures: {
      heldOutWindows: heldOut.length,
      heldOutScoreP50: quantile(sorted, 0.5),
      heldOutScoreP99: quantile(sorted, 0.99),
      heldOutScoreMax: sorted[sorted.length - 1]!,
      thresholdQuantile: options.thresholdQuantile,
      thresholdMultiplier: options.thresholdMultiplier,
      clearRatio: options.clearRatio,
      heldOutFalseAlarmRate: alarmWindows / heldOut.length,
    },
  };
}

/** A floor keeps a perfectly quiet hold-out (all scores ~0) from yielding a zero threshold. */
export function raiseThresholdFrom(reference: number, multiplier: number): number {
  return Math.max(reference * multiplier, 1e-6);
}

/** The value at rank floor(q·(n-1)) of an ascending array (no interpolation, so it is a real score). */
export function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))]!;
}
