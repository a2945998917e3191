/** Band names and the hysteresis that moves a stream between bands. */

/** Drift bands; `warming` until a channel has minReadings readings. */
export const driftBands = ['warming', 'ok', 'moderate', 'severe'] as const;
export type DriftBand = (typeof driftBands)[number];

/** Input-quality bands; `warming` until the stream has minReadings readings. */
export const qualityBands = ['warming', 'ok', 'poor'] as const;
export type QualityBand = (typeof qualityBands)[number];

/**
 * The band (1 = the lowest after warming, index into the band list) a measure puts a stream in, from
 * `current`: up as soon as the measure reaches a band's threshold, down only once it is below
 * (1 - hysteresis) × the threshold of the band it leaves, so a measure sitting on a boundary does not flap.
 * `thresholds` are ascending: thresholds[i] is the lower bound of band i + 2.
 */
export function nextBand(current: number, value: number, thresholds: Float64Array, hysteresis: number): number {
  let up = 1;
  for (let i = 0; i < thresholds.length; i++) if (value >= (thresholds[i] as number)) up = i + 2;
  if (up >= current) return up;
  let band = current;
  while (band > up && value < (thresholds[band - 2] as number) * (1 - hysteresis)) band--;
  return band;
}
