/** Sets the decision policy from scores on held-out normal data (never from labels). */
import type { DecisionPolicy } from '../../model/manifest.js';

// Chosen once on SKAB valve1 with the SKAB protocol and kept for every model (see docs/models.md):
// held-out normal data under-represents slow drift (temperature, wear), so the raise threshold sits
// well above the held-out tail, and an alert clears only after half a minute of quiet windows.
export const THRESHOLD_QUANTILE = 0.99;
export const THRESHOLD_MULTIPLIER = 4;
export const RAISE_AFTER = 1;
export const RESOLVE_AFTER = 30;

export interface Calibration {
  policy: DecisionPolicy;
  figures: Record<string, number>;
}

/** `heldOut`: one score per held-out window, in time order. */
export function calibrate(heldOut: Float64Array): Calibration {
  if (heldOut.length === 0) throw new RangeError('calibration needs at least one held-out window');
  const sorted = Float64Array.from(heldOut).sort();
  const q99 = quantile(sorted, THRESHOLD_QUANTILE);
  // A floor keeps a perfectly quiet hold-out (all scores ~0) from yielding a zero threshold.
  const raiseThreshold = Math.max(q99 * THRESHOLD_MULTIPLIER, 1e-6);
  let alarmWindows = 0;
  for (const s of heldOut) if (s >= raiseThreshold) alarmWindows++;
  return {
    policy: {
      raiseThreshold,
      clearThreshold: raiseThreshold,
      raiseAfter: RAISE_AFTER,
      resolveAfter: RESOLVE_AFTER,
      cooldownMs: 0,
    },
    figures: {
      heldOutWindows: heldOut.length,
      heldOutScoreP50: quantile(sorted, 0.5),
      heldOutScoreP99: q99,
      heldOutScoreMax: sorted[sorted.length - 1]!,
      thresholdQuantile: THRESHOLD_QUANTILE,
      thresholdMultiplier: THRESHOLD_MULTIPLIER,
      heldOutFalseAlarmRate: alarmWindows / heldOut.length,
    },
  };
}

/** The value at rank floor(q·(n-1)) of an ascending array (no interpolation, so it is a real score). */
function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))]!;
}
