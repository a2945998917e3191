/**
 * The `baseline-tests` family: windows normalised by each stream's own baseline (the window store does
 * it, see src/window/baseline.ts), then one test per fault kind, each on the scale "1 = its threshold":
 * - level: T² + Q of the window means (PCA, as window-pca-t2q) — a level shift or a broken relation;
 * - spike: |newest reading| — a single-reading spike;
 * - noise: RMS of successive differences, high — a noise burst;
 * - stuck: 1 / (RMS of successive differences + ε), high — a stuck or flat-lined channel.
 * The score is the largest of them. The per-channel tests are referenced to the largest value each
 * took on the training windows, per channel; the level test to the held-out windows' quantile.
 */
import type { BaselineSpec } from '../../model/manifest.js';
import { BaselineRule, baselineTrack } from '../../window/baseline.js';
import type { DetectorOptions, PolicyOptions } from './detector.js';
import { FitError, fitWindowMeans, type WindowPcaModel } from './window-pca.js';

export const TEST_NAMES = ['level', 'spike', 'noise', 'stuck'] as const;
export type TestName = (typeof TEST_NAMES)[number];
/** Added to the roughness (in units of the stream's scale) before the stuck test inverts it. */
export const STUCK_EPSILON = 1e-6;
/** A deviation moves the baseline by at most this many scales. */
export const BASELINE_CLIP = 3;
/** The smallest scale, as a share of each channel's spread in the training rows. */
const MIN_SCALE_SHARE = 0.05;
const FIT_SHARE = 0.75;

/** Per window (ending at row `end[k]`), per channel: normalised mean, newest reading and roughness. */
export interface WindowFeatures {
  end: Int32Array;
  mean: Float64Array[];
  last: Float64Array[];
  rough: Float64Array[];
}

export interface BaselineTestsModel {
  window: number;
  baseline: BaselineSpec;
  level: WindowPcaModel;
  /** Multiplies the level score (1 / its threshold). */
  invLevel: number;
  /** Per channel: 1 / threshold of each per-channel test (0: the test is off). */
  invSpike: Float64Array;
  invNoise: Float64Array;
  invStuck: Float64Array;
}

/** What calibration keeps: the references the thresholds are multiples of. */
export interface TestReferences {
  level: number;
  spike: Float64Array;
  noise: Float64Array;
  stuck: Float64Array;
}

/** The baseline rule a fit with these options declares. */
export function baselineSpec(columns: readonly Float64Array[], rows: number, detector: Pick<DetectorOptions, 'warmupRows' | 'halfLifeRows' | 'maxHoldRows'>): BaselineSpec {
  const minScale = columns.map((col) => {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += col[i]!;
    const mean = sum / rows;
    let sq = 0;
    for (let i = 0; i < rows; i++) sq += (col[i]! - mean) ** 2;
    const sd = Math.sqrt(sq / Math.max(1, rows - 1));
    return Number(Math.max(MIN_SCALE_SHARE * sd, 1e-9 * Math.max(1, Math.abs(mean))).toPrecision(6));
  });
  return { version: 1, warmupRows: detector.warmupRows, halfLifeRows: detector.halfLifeRows, clip: BASELINE_CLIP, minScale, maxHoldRows: detector.maxHoldRows };
}

/**
 * Features of every window of rows [0, rows) the daemon would score with no alert open, normalised
 * exactly as the window store does (float32 readings and outputs).
 */
export function windowFeatures(rule: BaselineRule, columns: readonly Float64Array[], window: number, rows: number): WindowFeatures {
  const c = columns.length;
  const { loc, invScale } = baselineTrack(rule, columns, window, rows);
  const ends: number[] = [];
  for (let i = 0; i < rows; i++) if (!Number.isNaN(loc[0]![i]!)) ends.push(i);
  const n = ends.length;
  const mean = columns.map(() => new Float64Array(n));
  const last = columns.map(() => new Float64Array(n));
  const rough = columns.map(() => new Float64Array(n));
  const f = Math.fround;
  for (let k = 0; k < n; k++) {
    const i = ends[k]!;
    for (let j = 0; j < c; j++) {
      const col = columns[j]!;
      const m = loc[j]![i]!;
      const inv = invScale[j]!.at(i)!;
      let sum = 0;
      let sq = 0;
      let prev = 0;
      for (let t = i - window + 1; t <= i; t++) {
        const z = f((f(col[t]!) - m) * inv);
        sum += z;
        if (t > i - window + 1) sq += (z - prev) * (z - prev);
        prev = z;
      }
      mean[j]![k] = sum / window;
      last[j]![k] = prev;
      rough[j]![k] = Math.sqrt(sq / (window - 1));
    }
  }
  return { end: Int32Array.from(ends), mean, last, rough };
}

/** x'Mx of one window's normalised means, with its per-channel contributions into `parts` when given. */
function levelOf(model: WindowPcaModel, means: ArrayLike<number>, x: Float64Array, parts?: Float64Array, at = 0): number {
  const c = x.length;
  for (let j = 0; j < c; j++) x[j] = (means[j]! - model.center[j]!) * model.scale[j]!;
  let total = 0;
  for (let a = 0; a < c; a++) {
    let mx = 0;
    for (let j = 0; j < c; j++) mx += model.metric[a * c + j]! * x[j]!;
    if (parts) parts[at + a] = x[a]! * mx;
    total += x[a]! * mx;
  }
  return total;
}

/** Level scores of every window of `features`. */
export function levelScores(model: WindowPcaModel, features: WindowFeatures): Float64Array {
  const c = features.mean.length;
  const n = features.end.length;
  const out = new Float64Array(n);
  const m = new Float64Array(c);
  const x = new Float64Array(c);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < c; j++) m[j] = features.mean[j]![k]!;
    out[k] = levelOf(model, m, x);
  }
  return out;
}

/** The fit before thresholds: what leave-one-file-out scores many policies against. */
export interface FittedTests {
  rule: BaselineRule;
  spec: BaselineSpec;
  level: WindowPcaModel;
  /** Level scores of the held-out windows. */
  heldOut: Float64Array;
  /** Largest value of each per-channel statistic over the training windows. */
  spikeRef: Float64Array;
  noiseRef: Float64Array;
  stuckRef: Float64Array;
  windows: number;
  fitWindows: number;
}

export function fitTests(columns: Float64Array[], channels: string[], rows: number, detector: DetectorOptions): FittedTests {
  const window = detector.window;
  if (window < 2) throw new FitError(`window ${window}: the baseline-tests family needs at least 2 rows per window (successive differences); pass e.g. --window 20`);
  const spec = baselineSpec(columns, rows, detector);
  const rule = new BaselineRule(spec);
  const features = windowFeatures(rule, columns, window, rows);
  const n = features.end.length;
  const fitWindows = Math.floor(n * FIT_SHARE);
  const minFit = Math.max(2 * (channels.length + 1), 10);
  if (fitWindows < minFit || n - fitWindows < 5) {
    const need = detector.warmupRows + window + Math.ceil(minFit / FIT_SHARE) + 5;
    throw new FitError(
      `has ${rows} rows; window ${window} with ${channels.length} channels needs at least ${need} ` +
        `(${detector.warmupRows} to learn the baseline, then windows to fit and hold out); record more normal data or pass a smaller --window`,
    );
  }
  const level = fitWindowMeans(
    features.mean.map((m) => m.slice(0, fitWindows)),
    channels,
    window,
    detector,
  );
  const all = levelScores(level, features);
  const ref = (series: Float64Array[], map: (v: number) => number): Float64Array =>
    Float64Array.from(series, (s) => {
      let max = 0;
      for (const v of s) max = Math.max(max, map(v));
      return Math.max(max, 1e-6);
    });
  return {
    rule,
    spec,
    level,
    heldOut: all.slice(fitWindows),
    spikeRef: ref(features.last, Math.abs),
    noiseRef: ref(features.rough, (v) => v),
    stuckRef: ref(features.rough, (v) => 1 / (v + STUCK_EPSILON)),
    windows: n,
    fitWindows,
  };
}

const inverse = (ref: Float64Array, multiplier: number): Float64Array =>
  Float64Array.from(ref, (r) => (Number.isFinite(multiplier) ? Math.fround(1 / (multiplier * r)) : 0));

/** The model with thresholds: `levelThreshold` from the held-out level scores, the rest from the multipliers. */
export function withThresholds(fitted: FittedTests, window: number, levelThreshold: number, policy: PolicyOptions): BaselineTestsModel {
  return {
    window,
    baseline: fitted.spec,
    level: fitted.level,
    invLevel: Math.fround(1 / levelThreshold),
    invSpike: inverse(fitted.spikeRef, policy.spikeMultiplier),
    invNoise: inverse(fitted.noiseRef, policy.noiseMultiplier),
    invStuck: inverse(fitted.stuckRef, policy.stuckMultiplier),
  };
}

/** Per window of `features`: each test's score before its multiplier (level / held-out reference, per-channel maxima of stat / reference). */
export function testSeries(fitted: FittedTests, features: WindowFeatures, levelReference: number): Float64Array[] {
  const c = features.mean.length;
  const n = features.end.length;
  const level = levelScores(fitted.level, features);
  const out = TEST_NAMES.map(() => new Float64Array(n));
  for (let k = 0; k < n; k++) {
    out[0]![k] = level[k]! / levelReference;
    let s = 0;
    let no = 0;
    let st = 0;
    for (let j = 0; j < c; j++) {
      const r = features.rough[j]![k]!;
      s = Math.max(s, Math.abs(features.last[j]![k]!) / fitted.spikeRef[j]!);
      no = Math.max(no, r / fitted.noiseRef[j]!);
      st = Math.max(st, 1 / (r + STUCK_EPSILON) / fitted.stuckRef[j]!);
    }
    out[1]![k] = s;
    out[2]![k] = no;
    out[3]![k] = st;
  }
  return out;
}

export interface TestScores {
  scores: Float64Array;
  contributions: Float64Array;
  /** [batch, tests] */
  tests: Float64Array;
  /** [batch, tests, channels] */
  testChannels: Float64Array;
}

/**
 * Scores `batch` normalised windows laid out [batch, window, channels] (what the window store hands the
 * model), in float64, as the exported graph does in float32.
 */
export function scoreTestWindows(model: BaselineTestsModel, windows: ArrayLike<number>, batch: number): TestScores {
  const c = model.level.center.length;
  const w = model.window;
  const t = TEST_NAMES.length;
  const scores = new Float64Array(batch);
  const contributions = new Float64Array(batch * c);
  const tests = new Float64Array(batch * t);
  const testChannels = new Float64Array(batch * t * c);
  const means = new Float64Array(c);
  const x = new Float64Array(c);
  const parts = new Float64Array(c);
  for (let b = 0; b < batch; b++) {
    const base = b * w * c;
    for (let j = 0; j < c; j++) {
      let s = 0;
      let sq = 0;
      for (let r = 0; r < w; r++) {
        const z = windows[base + r * c + j]!;
        s += z;
        if (r > 0) sq += (z - windows[base + (r - 1) * c + j]!) ** 2;
      }
      means[j] = s / w;
      const rough = Math.sqrt(sq / (w - 1));
      const e = (b * t) * c + j;
      testChannels[e + c] = Math.abs(windows[base + (w - 1) * c + j]!) * model.invSpike[j]!;
      testChannels[e + 2 * c] = rough * model.invNoise[j]!;
      testChannels[e + 3 * c] = (1 / (rough + STUCK_EPSILON)) * model.invStuck[j]!;
    }
    levelOf(model.level, means, x, parts);
    for (let j = 0; j < c; j++) testChannels[b * t * c + j] = parts[j]! * model.invLevel;
    let score = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < t; k++) {
      let v = k === 0 ? 0 : Number.NEGATIVE_INFINITY;
      for (let j = 0; j < c; j++) {
        const e = testChannels[(b * t + k) * c + j]!;
        v = k === 0 ? v + e : Math.max(v, e);
      }
      tests[b * t + k] = v;
      score = Math.max(score, v);
    }
    scores[b] = score;
    for (let j = 0; j < c; j++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < t; k++) m = Math.max(m, testChannels[(b * t + k) * c + j]!);
      contributions[b * c + j] = m;
    }
  }
  return { scores, contributions, tests, testChannels };
}
