/** The detector's hyperparameters: what `sentinel train` uses by default and what leave-one-file-out chooses among. */

/** How the fit turns each channel's window means into unit-free numbers. */
export type Scaling = 'moment' | 'robust';

/** Choices that change the fitted graph. */
export interface FitOptions {
  /** Rows per window. */
  window: number;
  /** `moment`: mean and standard deviation of the training window means; `robust`: median and MAD. */
  scaling: Scaling;
  /**
   * Rows of slow drift to allow for: each channel's spread is widened by the drift its training trend
   * would make over this many rows, so a channel that already walks while training weighs less. 0: none.
   */
  driftHorizon: number;
}

/** Choices that set the decision policy from held-out scores. */
export interface PolicyOptions {
  /** The held-out score quantile the raise threshold is a multiple of. */
  thresholdQuantile: number;
  thresholdMultiplier: number;
  /** clearThreshold = clearRatio × raiseThreshold (1: no hysteresis band). */
  clearRatio: number;
  /** Consecutive windows under the clear threshold that resolve an alert. */
  resolveAfter: number;
}

export type DetectorOptions = FitOptions & PolicyOptions;

/**
 * The leave-one-file-out rule's choice over SKAB valve1 with every file (docs/models.md has the
 * table and `sentinel eval-skab --loo` rechecks it); `sentinel train` uses these unless told otherwise.
 */
export const DEFAULT_DETECTOR: DetectorOptions = {
  window: 20,
  scaling: 'moment',
  driftHorizon: 0,
  thresholdQuantile: 1,
  thresholdMultiplier: 4,
  clearRatio: 1,
  resolveAfter: 30,
};

/** The options as one short line, e.g. for a table row or a manifest figure. */
export function describeDetector(d: DetectorOptions): string {
  return (
    `window ${d.window}, ${d.scaling} scaling, drift horizon ${d.driftHorizon}, ` +
    `raise ${d.thresholdMultiplier} × q${d.thresholdQuantile}, clear ${d.clearRatio} × raise, resolve after ${d.resolveAfter}`
  );
}
