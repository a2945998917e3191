/**
 * The model family: PCA over window means, scored as Hotelling T² (per component) plus Q/SPE.
 *
 * Averaging each channel over the window first removes most of the white noise, so a sustained
 * shift of a few tenths of a sigma stands out; PCA then separates moves the training data made
 * together (load changes: small T²) from moves it never made (a broken relation: large Q). The
 * whole score is one quadratic form x'Mx of the scaled window mean x, which exports as a tiny graph.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { FitOptions } from './detector.js';

export interface WindowPcaModel {
  window: number;
  /** Per channel: subtracted from each raw reading (training mean of the window means). */
  center: Float64Array;
  /** Per channel: multiplies the centred window mean (1 / its training sd). */
  scale: Float64Array;
  /** Channels × channels, row-major, symmetric: score = x'Mx. */
  metric: Float64Array;
  /** Principal components kept for T²; the rest of the space is scored by Q. */
  components: number;
  /** Fraction of the window-mean variance (correlation scale) the kept components explain. */
  explained: number;
}

/** Components are kept until they explain this much variance; the rest is the residual space Q watches. */
const EXPLAINED_TARGET = 0.9;

export class FitError extends Error {
  override readonly name = 'FitError';
}

/**
 * Fits on rows [0, fitRows) of `columns`: windows ending at rows window-1 .. fitRows-1.
 * `channels` names the columns in errors.
 */
export function fitWindowPca(
  columns: Float64Array[],
  channels: string[],
  fitRows: number,
  window: number,
  options: Pick<FitOptions, 'scaling' | 'driftHorizon'> = { scaling: 'moment', driftHorizon: 0 },
): WindowPcaModel {
  return fitWindowMeans(windowMeans(columns, fitRows, window), channels, window, options);
}

/** Fits on precomputed window means (per channel, one value per fit window). */
export function fitWindowMeans(
  means: Float64Array[],
  channels: string[],
  window: number,
  options: Pick<FitOptions, 'scaling' | 'driftHorizon'> = { scaling: 'moment', driftHorizon: 0 },
): WindowPcaModel {
  const c = means.length;
  const n = (means[0] as Float64Array).length;
  const mu = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const m = means[j] as Float64Array;
    let s = 0;
    for (let i = 0; i < n; i++) s += m[i] as number;
    mu[j] = s / n;
  }
  const cov = new Matrix(c, c);
  for (let a = 0; a < c; a++) {
    const ma = means[a] as Float64Array;
    for (let b = a; b < c; b++) {
      const mb = means[b] as Float64Array;
      let s = 0;
      for (let i = 0; i < n; i++) s += ((ma[i] as number) - (mu[a] as number)) * ((mb[i] as number) - (mu[b] as number));
      cov.set(a, b, s / (n - 1));
      cov.set(b, a, s / (n - 1));
    }
  }
  for (let j = 0; j < c; j++) {
    // Relative test: a channel whose window means do not move carries no information to score.
    if (!(Math.sqrt(cov.get(j, j)) > 1e-12 * Math.max(1, Math.abs(mu[j]!)))) {
      throw new FitError(
        `channel "${channels[j]}" is constant (${mu[j]}) in the training rows; drop it with --channels or record data where it varies`,
      );
    }
  }
  if (options.scaling === 'robust') robustMoments(means, mu, cov);
  if (options.driftHorizon > 0) {
    // The drift a channel's training trend makes over the horizon counts as variance it may show.
    for (let j = 0; j < c; j++) {
      const drift = trendPerRow(means[j] as Float64Array) * options.driftHorizon;
      cov.set(j, j, cov.get(j, j) + drift * drift);
    }
  }
  const sd = new Float64Array(c);
  for (let j = 0; j < c; j++) sd[j] = Math.sqrt(cov.get(j, j));
  const corr = new Matrix(c, c);
  for (let a = 0; a < c; a++) for (let b = 0; b < c; b++) corr.set(a, b, cov.get(a, b) / (sd[a]! * sd[b]!));

  const evd = new EigenvalueDecomposition(corr, { assumeSymmetric: true });
  const order = evd.realEigenvalues.map((value, index) => ({ value, index })).sort((x, y) => y.value - x.value);
  const total = order.reduce((s, e) => s + Math.max(e.value, 0), 0);
  // Keep at least one residual dimension so Q can see a broken correlation.
  let k = 0;
  let explained = 0;
  while (k < c - 1 && explained < EXPLAINED_TARGET * total) explained += Math.max(order[k++]!.value, 0);

  // M = (I - UU') + U Λ⁻¹ U' / k: Q plus the mean T² per kept component.
  const metric = new Float64Array(c * c);
  for (let a = 0; a < c; a++) metric[a * c + a] = 1;
  for (let p = 0; p < k; p++) {
    const { value, index } = order[p]!;
    const u = evd.eigenvectorMatrix.getColumn(index);
    const t2Weight = 1 / (Math.max(value, 1e-9) * k);
    for (let a = 0; a < c; a++) {
      for (let b = 0; b < c; b++) metric[a * c + b] = metric[a * c + b]! + u[a]! * u[b]! * (t2Weight - 1);
    }
  }
  // The graph stores float32 parameters; rounding here makes the trainer score with the same numbers.
  return {
    window,
    center: mu.map(Math.fround),
    scale: sd.map((v) => Math.fround(1 / v)),
    metric: metric.map(Math.fround),
    components: k,
    explained: total > 0 ? explained / total : 1,
  };
}

/**
 * Replaces the centre by the median and each spread by 1.4826 × MAD of the window means, keeping the
 * correlations; a channel whose MAD is 0 (coarsely quantised readings) keeps its standard deviation.
 */
function robustMoments(means: Float64Array[], mu: Float64Array, cov: Matrix): void {
  const c = means.length;
  const sd = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const sorted = Float64Array.from(means[j] as Float64Array).sort();
    const median = medianOfSorted(sorted);
    const deviations = sorted.map((v) => Math.abs(v - median)).sort();
    const robust = 1.4826 * medianOfSorted(deviations);
    const moment = Math.sqrt(cov.get(j, j));
    mu[j] = median;
    sd[j] = robust > 1e-12 * Math.max(1, Math.abs(median)) ? robust : moment;
  }
  const moments = cov.diag();
  for (let a = 0; a < c; a++) {
    for (let b = 0; b < c; b++) cov.set(a, b, (cov.get(a, b) / Math.sqrt(moments[a]! * moments[b]!)) * sd[a]! * sd[b]!);
  }
}

function medianOfSorted(sorted: Float64Array): number {
  const n = sorted.length;
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

/** Least-squares slope of a series against its index. */
function trendPerRow(series: Float64Array): number {
  const n = series.length;
  const tMean = (n - 1) / 2;
  let yMean = 0;
  for (let i = 0; i < n; i++) yMean += series[i]!;
  yMean /= n;
  let sty = 0;
  let stt = 0;
  for (let i = 0; i < n; i++) {
    sty += (i - tMean) * (series[i]! - yMean);
    stt += (i - tMean) * (i - tMean);
  }
  return stt > 0 ? sty / stt : 0;
}

/** Per channel, the mean over each window ending at rows window-1 .. rows-1 (index 0 = first window). */
function windowMeans(columns: Float64Array[], rows: number, window: number): Float64Array[] {
  return columns.map((col) => {
    const out = new Float64Array(rows - window + 1);
    // Summing deviations from the first reading keeps the running sum well conditioned.
    const origin = col[0]!;
    let sum = 0;
    for (let i = 0; i < rows; i++) {
      sum += col[i]! - origin;
      if (i >= window) sum -= col[i - window]! - origin;
      if (i >= window - 1) out[i - window + 1] = origin + sum / window;
    }
    return out;
  });
}

/**
 * Scores `batch` windows laid out [batch, window, channels] (the ONNX input layout), in float64,
 * exactly as the exported graph does in float32. Returns the scores and the per-channel
 * contributions [batch, channels], which sum to the score.
 */
export function scoreWindows(
  model: WindowPcaModel,
  windows: ArrayLike<number>,
  batch: number,
): { scores: Float64Array; contributions: Float64Array } {
  const c = model.center.length;
  const w = model.window;
  const scores = new Float64Array(batch);
  const contributions = new Float64Array(batch * c);
  const x = new Float64Array(c);
  for (let b = 0; b < batch; b++) {
    const base = b * w * c;
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let t = 0; t < w; t++) s += windows[base + t * c + j]! - model.center[j]!;
      x[j] = (s / w) * model.scale[j]!;
    }
    let total = 0;
    for (let a = 0; a < c; a++) {
      let mx = 0;
      for (let j = 0; j < c; j++) mx += model.metric[a * c + j]! * x[j]!;
      const part = x[a]! * mx;
      contributions[b * c + a] = part;
      total += part;
    }
    scores[b] = total;
  }
  return { scores, contributions };
}

/** Scores the windows ending at rows [from, to) of `columns` (needs from >= window - 1). */
export function scoreRows(model: WindowPcaModel, columns: Float64Array[], from: number, to: number): Float64Array {
  const c = columns.length;
  const w = model.window;
  const out = new Float64Array(Math.max(0, to - from));
  const windowBuf = new Float64Array(w * c);
  for (let i = from; i < to; i++) {
    for (let t = 0; t < w; t++) {
      for (let j = 0; j < c; j++) windowBuf[t * c + j] = columns[j]![i - w + 1 + t]!;
    }
    out[i - from] = scoreWindows(model, windowBuf, 1).scores[0]!;
  }
  return out;
}
