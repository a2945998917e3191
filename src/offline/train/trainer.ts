/** Trains a model from a table of normal readings: fit, calibrate on held-out rows, export ONNX + manifest. */
import { createHash } from 'node:crypto';
import { channelColumn, type Table } from '../data/table.js';
import { manifestSchema, type Manifest } from '../../model/manifest.js';
import { calibrate } from './calibrate.js';
import { DEFAULT_DETECTOR, detectorFor, type DetectorOptions } from './detector.js';
import { TEST_NAMES, fitTests, scoreTestWindows, withThresholds, type BaselineTestsModel } from './baseline-tests.js';
import { CONTRIBUTIONS_NAME, INPUT_NAME, SCORE_NAME, TESTS_NAME, TEST_CHANNELS_NAME, exportOnnx, exportTestsOnnx } from './onnx-export.js';
import { FitError, fitWindowPca, scoreRows, scoreWindows, type WindowPcaModel } from './window-pca.js';

export const DEFAULT_WINDOW = DEFAULT_DETECTOR.window;
/** Share of the rows the model is fitted on; the later rest is held out to calibrate thresholds. */
export const FIT_SHARE = 0.75;
const MIN_HELD_OUT_WINDOWS = 10;

export interface TrainOptions {
  window?: number;
  /** Channels to use, in this order (default: every sensor column of the table). */
  channels?: string[];
  onProgress?: (fraction: number, note: string) => void;
  /** Where the data came from, for the manifest (default: the table's source). */
  source?: string;
  /** Model name for the manifest (default `model`). */
  name?: string;
  /** ISO-8601 creation time (default now); fixed by callers that need byte-identical output. */
  createdAt?: string;
  /** After a resolve, no new alert on the stream for this long (record time; default 0). */
  cooldownMs?: number;
  /** Hyperparameters other than `window` (default DEFAULT_DETECTOR), the family among them. */
  detector?: Partial<Omit<DetectorOptions, 'window'>>;
}

/** A fitted model before calibration: what leave-one-file-out scores many policies against. */
export interface FittedDetector {
  model: WindowPcaModel;
  channels: string[];
  columns: Float64Array[];
  detector: DetectorOptions;
  fitRows: number;
  /** Scores of the held-out windows (ending at rows fitRows .. rows-1). */
  heldOut: Float64Array;
}

export interface TrainedModel {
  onnx: Uint8Array;
  manifest: Manifest;
  /** The window-pca-t2q model, or the level test of a baseline-tests model. */
  model: WindowPcaModel;
  /** The whole baseline-tests model (absent for window-pca-t2q). */
  tests?: BaselineTestsModel;
  /** The trainer's own scores for windows laid out [batch, window, channels], to check the ONNX against. */
  scoreWindows(windows: ArrayLike<number>, batch: number): { scores: Float64Array; contributions: Float64Array };
}

export { FitError };

/** Synchronous: a 400 × 8 table trains in a few milliseconds. Throws FitError on unusable data. */
export function trainModel(table: Table, options: TrainOptions = {}): TrainedModel {
  const family = options.detector?.family ?? DEFAULT_DETECTOR.family;
  return family === 'baseline-tests' ? trainBaselineTests(table, options) : trainWindowPca(table, options);
}

function trainWindowPca(table: Table, options: TrainOptions): TrainedModel {
  const progress = options.onProgress ?? (() => {});
  const fitted = fitDetector(table, options, progress);
  const { model, channels, detector, fitRows } = fitted;
  progress(0.8, 'calibrating thresholds');
  const calibrated = calibrate(fitted.heldOut, detector);
  const figures = calibrated.figures;
  const policy = { ...calibrated.policy, cooldownMs: options.cooldownMs ?? calibrated.policy.cooldownMs };
  const window = model.window;

  progress(0.9, 'exporting ONNX');
  const name = options.name ?? 'model';
  const onnx = exportOnnx(model, {
    channels,
    description: `Sentinel window-pca-t2q model "${name}": window ${window}, channels ${channels.join(', ')}`,
  });
  const manifest = manifestSchema.parse({
    ...manifestCommon({ onnx, name, family: 'window-pca-t2q', channels, window, table, options, stats: channelStats(fitted.columns, fitRows) }),
    outputs: { score: SCORE_NAME, contributions: CONTRIBUTIONS_NAME },
    policy,
    calibration: {
      fitRows,
      heldOutRows: table.rows - fitRows,
      components: model.components,
      explainedVariance: model.explained,
      scaling: detector.scaling,
      driftHorizon: detector.driftHorizon,
      ...figures,
    },
  });
  progress(1, 'done');
  return { onnx, manifest, model, scoreWindows: (windows, batch) => scoreWindows(model, windows, batch) };
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** What every family's manifest says of its file, its input and the data it was trained on (the schema orders the keys). */
function manifestCommon(m: {
  onnx: Uint8Array;
  name: string;
  family: Manifest['family'];
  channels: readonly string[];
  window: number;
  table: Table;
  options: TrainOptions;
  stats: { mean: number[]; std: number[] };
}): Omit<Manifest, 'outputs' | 'policy' | 'calibration'> {
  const { table, options } = m;
  return {
    schemaVersion: 1,
    name: m.name,
    version: `sha256:${createHash('sha256').update(m.onnx).digest('hex')}`,
    family: m.family,
    createdAt: options.createdAt ?? new Date().toISOString(),
    channels: [...m.channels],
    window: m.window,
    input: { name: INPUT_NAME },
    normalization: { kind: 'graph' },
    training: {
      rows: table.rows,
      from: iso(table.timestamps?.[0]),
      to: iso(table.timestamps?.[table.rows - 1]),
      sha256: table.sha256,
      source: options.source ?? table.source,
      stats: m.stats,
    },
  };
}

/** The checked channels and their columns, and the whole detector, from the options. */
function prepare(table: Table, options: TrainOptions): { window: number; detector: DetectorOptions; channels: string[]; columns: Float64Array[] } {
  const preset = detectorFor(options.detector?.family ?? DEFAULT_DETECTOR.family);
  const window = options.window ?? preset.window;
  if (!Number.isInteger(window) || window < 1 || window > 4096) {
    throw new FitError(`window ${window} is not a whole number of rows in 1..4096; pass e.g. --window ${preset.window}`);
  }
  const detector: DetectorOptions = { ...preset, ...options.detector, window };
  const channels = options.channels ?? table.channels;
  if (channels.length === 0) throw new FitError('no channels to train on; name at least one with --channels');
  if (new Set(channels).size !== channels.length) {
    throw new FitError(`--channels names a channel twice (${channels.join(',')}); list each once`);
  }
  const columns = channels.map((name) => {
    try {
      return channelColumn(table, name);
    } catch (err) {
      throw new FitError((err as Error).message);
    }
  });
  return { window, detector, channels, columns };
}

/**
 * baseline-tests: the stream's baseline learns the first warm-up rows, the level test is fitted on the
 * first FIT_SHARE of the windows after it and referenced to the held-out rest; the per-channel tests are
 * referenced to their largest value on every training window.
 */
function trainBaselineTests(table: Table, options: TrainOptions): TrainedModel {
  const progress = options.onProgress ?? (() => {});
  const { window, detector, channels, columns } = prepare(table, options);
  progress(0.1, `learning baselines over ${detector.warmupRows} rows, fitting the tests`);
  const fitted = fitTests(columns, channels, table.rows, detector);
  progress(0.8, 'calibrating thresholds');
  const calibrated = calibrate(fitted.heldOut, detector);
  const model = withThresholds(fitted, window, calibrated.policy.raiseThreshold, detector);
  const policy = {
    raiseThreshold: 1,
    clearThreshold: detector.clearRatio,
    raiseAfter: detector.raiseAfter,
    resolveAfter: detector.resolveAfter,
    cooldownMs: options.cooldownMs ?? detector.cooldownMs,
  };
  progress(0.9, 'exporting ONNX');
  const name = options.name ?? 'model';
  const onnx = exportTestsOnnx(model, {
    channels,
    description: `Sentinel baseline-tests model "${name}": window ${window}, channels ${channels.join(', ')}`,
  });
  const finite = (v: number): number | string => (Number.isFinite(v) ? v : 'off');
  const manifest = manifestSchema.parse({
    ...manifestCommon({ onnx, name, family: 'baseline-tests', channels, window, table, options, stats: channelStats(columns, table.rows) }),
    outputs: { score: SCORE_NAME, contributions: CONTRIBUTIONS_NAME, tests: { names: [...TEST_NAMES], scores: TESTS_NAME, channels: TEST_CHANNELS_NAME } },
    policy,
    calibration: {
      windows: fitted.windows,
      fitWindows: fitted.fitWindows,
      heldOutWindows: fitted.windows - fitted.fitWindows,
      components: fitted.level.components,
      explainedVariance: fitted.level.explained,
      scaling: detector.scaling,
      ...calibrated.figures,
      levelThreshold: calibrated.policy.raiseThreshold,
      spikeMultiplier: finite(detector.spikeMultiplier),
      noiseMultiplier: finite(detector.noiseMultiplier),
      stuckMultiplier: finite(detector.stuckMultiplier),
    },
    baseline: fitted.spec,
  });
  progress(1, 'done');
  return { onnx, manifest, model: fitted.level, tests: model, scoreWindows: (windows, batch) => scoreTestWindows(model, windows, batch) };
}

/** Fits the graph on the first FIT_SHARE of the rows and scores the held-out rest. */
export function fitDetector(table: Table, options: TrainOptions = {}, progress: (fraction: number, note: string) => void = () => {}): FittedDetector {
  const { window, detector, channels, columns } = prepare(table, options);

  const needed = minimumRows(window, channels.length);
  if (table.rows < needed) {
    throw new FitError(
      `${table.source} has ${table.rows} rows; window ${window} with ${channels.length} channels needs at least ${needed} ` +
        `(${Math.round(FIT_SHARE * 100)}% to fit, the rest held out to calibrate); record more normal data or pass a smaller --window`,
    );
  }
  const fitRows = Math.floor(table.rows * FIT_SHARE);

  progress(0.1, `fitting on rows 0..${fitRows - 1}`);
  const model = fitWindowPca(columns, channels, fitRows, window, detector);
  progress(0.5, `scoring ${table.rows - fitRows} held-out windows`);
  const heldOut = scoreRows(model, columns, fitRows, table.rows);
  return { model, channels, columns, detector, fitRows, heldOut };
}

/** Fewest rows that leave enough fit windows for a covariance and enough held-out windows to calibrate. */
export function minimumRows(window: number, channels: number): number {
  const fitWindows = Math.max(2 * (channels + 1), 10);
  const fitRows = window - 1 + fitWindows;
  return Math.max(Math.ceil(fitRows / FIT_SHARE), fitRows + MIN_HELD_OUT_WINDOWS, Math.ceil(MIN_HELD_OUT_WINDOWS / (1 - FIT_SHARE)));
}

/** Mean and standard deviation of each channel's raw readings on the fit rows: the reference for input drift. */
export function channelStats(columns: readonly Float64Array[], rows: number): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (const column of columns) {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += column[i] as number;
    const m = sum / rows;
    let squares = 0;
    for (let i = 0; i < rows; i++) squares += ((column[i] as number) - m) ** 2;
    // Rounded so that the manifest stays readable and byte-stable across platforms.
    mean.push(Number(m.toPrecision(10)));
    std.push(Number(Math.sqrt(squares / Math.max(1, rows - 1)).toPrecision(10)));
  }
  return { mean, std };
}
