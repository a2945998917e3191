/**
 * Leave-one-file-out over a folder of SKAB files: every hyperparameter is chosen on the other files,
 * the held-out file is scored through the daemon's decision path, and the counts are summed.
 */
import { channelColumn, readTable, type Table } from '../data/table.js';
import { HysteresisDecider } from '../../decide/hysteresis.js';
import { createScorer } from '../../model/scorer.js';
import { fitTests } from '../train/baseline-tests.js';
import { calibrate } from '../train/calibrate.js';
import { describeDetector, type DetectorOptions, type Family, type FitOptions, type PolicyOptions } from '../train/detector.js';
import { searchWithHold } from '../train/hold-search.js';
import { fitDetector, trainModel } from '../train/trainer.js';
import { scoreRows } from '../train/window-pca.js';
import { countConfusion, replayScorerOptions, replayTable, report, type Confusion, type DetectionReport } from './replay.js';
import { SKAB_TRAIN_ROWS, csvFiles, headOf, sliceOf } from './skab.js';

/** The choices searched: every fit option with every policy option (one such product per family). */
export interface LooGrid {
  fit: FitOptions[];
  policy: PolicyOptions[];
}

/**
 * Which false alarms a choice must keep at or under the FAR limit (the F1 is always the labelled files'):
 * `labelled` the labelled files' pooled FAR; `pooled` the FAR pooled over the labelled files and the
 * normal recording's SKAB-length segments; `segments` the labelled files' FAR and, separately, the
 * segments'; `segments-and-file` those two and the whole normal recording's.
 */
export type ChoiceRule = 'labelled' | 'pooled' | 'segments' | 'segments-and-file';

/** A detector family to report: a name and the part of the grid it may choose from, or one fixed choice. */
export interface LooVariant {
  name: string;
  allows?(candidate: DetectorOptions): boolean;
  fixed?: DetectorOptions;
  /** The choice rule (default: `labelled`, or `pooled` with normalRule `select`). */
  rule?: ChoiceRule;
}

/** The default before leave-one-file-out, chosen by hand on all of valve1: the baseline. */
export const FIXED_BEFORE_LOO: DetectorOptions = {
  family: 'window-pca-t2q',
  window: 20,
  scaling: 'moment',
  driftHorizon: 0,
  warmupRows: 0,
  halfLifeRows: null,
  maxHoldRows: null,
  spikeMultiplier: Number.POSITIVE_INFINITY,
  noiseMultiplier: Number.POSITIVE_INFINITY,
  stuckMultiplier: Number.POSITIVE_INFINITY,
  thresholdQuantile: 0.99,
  thresholdMultiplier: 4,
  clearRatio: 1,
  resolveAfter: 30,
  raiseAfter: 1,
  cooldownMs: 0,
};

const product = <T>(lists: T[][]): T[][] => lists.reduce<T[][]>((acc, list) => acc.flatMap((a) => list.map((v) => [...a, v])), [[]]);

const OFF = Number.POSITIVE_INFINITY;

/** window-pca-t2q fit options (no baseline, no per-channel tests). */
export function pcaFitGrid(windows: number[], scalings: FitOptions['scaling'][], horizons: number[]): FitOptions[] {
  return product<number | string>([windows, scalings, horizons]).map(([window, scaling, driftHorizon]) => ({
    family: 'window-pca-t2q',
    window: window as number,
    scaling: scaling as FitOptions['scaling'],
    driftHorizon: driftHorizon as number,
    warmupRows: 0,
    halfLifeRows: null,
    maxHoldRows: null,
  }));
}

/** baseline-tests fit options (moment scaling of the level test). */
export function testsFitGrid(windows: number[], warmups: number[], halfLives: Array<number | null>, holds: Array<number | null> = [null]): FitOptions[] {
  return product<number | null>([windows, warmups, halfLives, holds]).map(([window, warmupRows, halfLifeRows, maxHoldRows]) => ({
    family: 'baseline-tests',
    window: window as number,
    scaling: 'moment',
    driftHorizon: 0,
    warmupRows: warmupRows as number,
    halfLifeRows: halfLifeRows ?? null,
    maxHoldRows: maxHoldRows ?? null,
  }));
}

/** The decision options besides the threshold: per-channel tests, raise count and cooldown (baseline-tests). */
export interface PolicyExtras {
  spike?: number[];
  noise?: number[];
  stuck?: number[];
  raiseAfter?: number[];
  cooldownMs?: number[];
}

export function policyGrid(quantiles: number[], multipliers: number[], clearRatios: number[], resolves: number[], extras: PolicyExtras = {}): PolicyOptions[] {
  const { spike = [OFF], noise = [OFF], stuck = [OFF], raiseAfter = [1], cooldownMs = [0] } = extras;
  return product([quantiles, multipliers, spike, noise, stuck, raiseAfter, cooldownMs, clearRatios, resolves]).map(
    ([thresholdQuantile, thresholdMultiplier, spikeMultiplier, noiseMultiplier, stuckMultiplier, raise, cooldown, clearRatio, resolveAfter]) => ({
      thresholdQuantile: thresholdQuantile!,
      thresholdMultiplier: thresholdMultiplier!,
      spikeMultiplier: spikeMultiplier!,
      noiseMultiplier: noiseMultiplier!,
      stuckMultiplier: stuckMultiplier!,
      clearRatio: clearRatio!,
      resolveAfter: resolveAfter!,
      raiseAfter: raise!,
      cooldownMs: cooldown!,
    }),
  );
}

/**
 * baseline-tests: what the leave-one-file-out rule chooses among (docs/models.md has the figures). The
 * half-lives are crossed with the hold limits; a fixed baseline (no half-life) has nothing to hold.
 */
export const TESTS_GRID: LooGrid = {
  fit: [...testsFitGrid([10, 20], [100, 200], [null]), ...testsFitGrid([10, 20], [100, 200], [200, 600, 2000], [null, 200, 600])],
  policy: policyGrid([1], [1.5, 2, 3, 4, 6, 8], [1, 0.5], [1, 5, 10, 20, 30, 45], {
    spike: [3, 5, OFF],
    noise: [3, 5, OFF],
    raiseAfter: [1, 5],
    cooldownMs: [0, 300_000],
  }),
};

export const PCA_GRID: LooGrid = {
  fit: pcaFitGrid([10, 15, 20, 30, 40], ['moment'], [0]),
  policy: policyGrid([0.99, 1], [1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20], [1, 0.5, 0.25], [1, 5, 10, 20, 30, 45, 60]),
};

export const LOO_GRIDS: LooGrid[] = [TESTS_GRID, PCA_GRID];

const isTests = (d: Pick<FitOptions, 'family'>): boolean => d.family === 'baseline-tests';

const levelOnly = (d: DetectorOptions): boolean => !Number.isFinite(d.spikeMultiplier) && !Number.isFinite(d.noiseMultiplier) && !Number.isFinite(d.stuckMultiplier);

/** The rule whose in-sample choice is the default preset, BASELINE_TESTS_DETECTOR (detector.ts). */
export const SHIPPED_TESTS_RULE: ChoiceRule = 'segments-and-file';

export const LOO_VARIANTS: LooVariant[] = [
  { name: 'window-pca-t2q, fixed choice made on valve1 by hand (before)', fixed: FIXED_BEFORE_LOO },
  { name: 'window-pca-t2q, window and policy chosen (shipped before issue 12 part 2)', allows: (d) => !isTests(d) },
  { name: 'baseline-tests, every option', allows: isTests, rule: 'labelled' },
  { name: 'baseline-tests, every option', allows: isTests, rule: 'pooled' },
  { name: 'baseline-tests, every option', allows: isTests, rule: 'segments' },
  { name: 'baseline-tests, every option (shipped preset)', allows: isTests, rule: SHIPPED_TESTS_RULE },
  { name: 'baseline-tests, no cooldown', allows: (d) => isTests(d) && d.cooldownMs === 0, rule: SHIPPED_TESTS_RULE },
  { name: 'baseline-tests, hold capped (200 or 600 rows)', allows: (d) => isTests(d) && d.maxHoldRows !== null, rule: SHIPPED_TESTS_RULE },
  { name: 'baseline-tests, level test only', allows: (d) => isTests(d) && levelOnly(d), rule: SHIPPED_TESTS_RULE },
  { name: 'baseline-tests, fixed baseline (no half-life)', allows: (d) => isTests(d) && d.halfLifeRows === null, rule: SHIPPED_TESTS_RULE },
];

/** Most pooled false alarms a choice may make on the files it is chosen on (%), as the issue's target. */
export const MAX_FAR = 10;

export interface LooOptions {
  grid?: LooGrid | LooGrid[];
  variants?: LooVariant[];
  /** A long recording of normal running: scored whole, and cut into SKAB-length segments (see `normalRule`). */
  normalFile?: string;
  /**
   * `report`: the normal segments' false alarms are only reported; `select`: they count in the pooled
   * FAR a choice must keep under `maxFar`, so slow drift over normal running weighs in the choice.
   */
  normalRule?: 'report' | 'select';
  /** Only this family's grid and variants (default: every family's). */
  family?: Family;
  label?: string;
  maxFar?: number;
  onProgress?: (note: string) => void;
}

export interface NormalRunning {
  rows: number;
  falseAlarmRate: number;
  /** `raised` decisions per 24 h of record time. */
  alertsPerDay: number;
  /** Pooled over SKAB-length segments, each trained on its first rows like a labelled file. */
  segments: number;
  segmentFalseAlarmRate: number;
}

/** How alerts line up with labelled faults: one fault should give one `raised` and one `resolved` near its end. */
export interface FaultTiming {
  faults: number;
  /** Alerts overlapping each fault, on average (1: one raised per fault). */
  raisedPerFault: number;
  /** Faults no alert overlapped. */
  missed: number;
  /** Median over faults of (row the last overlapping alert resolved − first row after the label), in rows. */
  medianResolveDelay: number;
  /** Median of its absolute value. */
  medianResolveDistance: number;
  /** Faults whose last alert was still open when the file ended (not in the medians). */
  openAtEnd: number;
}

/** Rows per normal-running segment: about one SKAB experiment (400 to train, ~750 scored). */
export const NORMAL_SEGMENT_ROWS = 1150;

export interface VariantResult {
  name: string;
  /** Chosen on every file, scored on every file: what `sentinel train` would ship. */
  inSample: DetectionReport;
  inSampleChoice: DetectorOptions;
  /** Each file scored with the choice made on the others. */
  leaveOneOut: DetectionReport;
  /** Per file: the choice made without it and its counts. */
  folds: { file: string; choice: DetectorOptions; counts: Confusion }[];
  /** The leave-one-out replays' alerts against the labelled faults. */
  timing: FaultTiming;
  normal: NormalRunning | null;
  rule: ChoiceRule;
}

export interface LooReport {
  variants: VariantResult[];
  files: number;
  candidates: number;
  maxFar: number;
  normalRule: 'report' | 'select';
  /** Wall time of the candidate search (every candidate on every file and normal segment), ms. */
  searchMs: number;
}

interface LoadedFile {
  path: string;
  table: Table;
  labels: Uint8Array;
}

/**
 * Candidates' counts per file: `data[(candidate × files + file) × 4 + 0..3]` = TP, FP, FN, TN. Flat, so
 * a grid of 10⁵ candidates over 25 files stays one typed array.
 */
export interface CountTable {
  candidates: number;
  files: number;
  data: Int32Array;
}

/** A count table from per-candidate, per-file counts (tests, small grids). */
export function countTable(counts: Confusion[][]): CountTable {
  const files = counts[0]?.length ?? 0;
  const data = new Int32Array(counts.length * files * 4);
  counts.forEach((row, k) =>
    row.forEach((cell, f) => data.set([cell.tp, cell.fp, cell.fn, cell.tn], (k * files + f) * 4)),
  );
  return { candidates: counts.length, files, data };
}

/**
 * Counts per candidate (grid order) per file, from the trainer's own scores and the daemon's hysteresis.
 * baseline-tests candidates are simulated with the hold (hold-search.ts): each policy's open alert holds
 * its baseline, as in the daemon.
 */
function searchCounts(files: LoadedFile[], grids: LooGrid[]): { candidates: DetectorOptions[]; counts: CountTable } {
  const candidates: DetectorOptions[] = [];
  for (const grid of grids) for (const fit of grid.fit) for (const policy of grid.policy) candidates.push({ ...fit, ...policy });
  const counts: CountTable = { candidates: candidates.length, files: files.length, data: new Int32Array(candidates.length * files.length * 4) };
  let first = 0;
  for (const grid of grids) {
    const search = grid.fit.some(isTests) ? searchTests : searchPca;
    grid.fit.forEach((fit, i) => search(files, fit, grid.policy, counts, first + i * grid.policy.length));
    first += grid.fit.length * grid.policy.length;
  }
  return { candidates, counts };
}

function store(counts: CountTable, candidate: number, file: number, c: ArrayLike<number>, from = 0): void {
  const at = (candidate * counts.files + file) * 4;
  for (let q = 0; q < 4; q++) counts.data[at + q] = c[from + q]!;
}

function searchTests(files: LoadedFile[], fit: FitOptions, policies: PolicyOptions[], counts: CountTable, first: number): void {
  files.forEach((f, i) => {
    const columns = f.table.channels.map((name) => channelColumn(f.table, name));
    const fitted = fitTests(columns, f.table.channels, SKAB_TRAIN_ROWS, { ...DEFAULT_TESTS_POLICY, ...fit });
    const stream = { columns, rows: f.table.rows, timestamps: f.table.timestamps, labels: f.labels };
    const result = searchWithHold(fitted, stream, fit.window, policies, { from: SKAB_TRAIN_ROWS });
    for (let p = 0; p < policies.length; p++) store(counts, first + p, i, result.counts, p * 4);
  });
}

const DEFAULT_TESTS_POLICY: PolicyOptions = { thresholdQuantile: 1, thresholdMultiplier: 1, spikeMultiplier: OFF, noiseMultiplier: OFF, stuckMultiplier: OFF, clearRatio: 1, resolveAfter: 1, raiseAfter: 1, cooldownMs: 0 };

function searchPca(files: LoadedFile[], fit: FitOptions, policies: PolicyOptions[], counts: CountTable, first: number): void {
  files.forEach((f, i) => {
    const { heldOut, scores } = fitAndScore(f.table, fit);
    policies.forEach((policy, p) => {
      const c = countConfusion(decide(f.table, fit.window, scores, calibrate(heldOut, policy).policy), f.labels, SKAB_TRAIN_ROWS);
      store(counts, first + p, i, [c.tp, c.fp, c.fn, c.tn]);
    });
  });
}

function fitAndScore(table: Table, fit: FitOptions): { heldOut: Float64Array; scores: Float64Array } {
  const fitted = fitDetector(headOf(table, SKAB_TRAIN_ROWS), { window: fit.window, detector: { ...fit, family: 'window-pca-t2q' } });
  const columns = fitted.channels.map((name) => channelColumn(table, name));
  return { heldOut: fitted.heldOut, scores: scoreRows(fitted.model, columns, fit.window - 1, table.rows) };
}

/** Per row, 1 while an alert is open: the decision stage's rule applied to windows ending at window-1 .. */
function decide(table: Table, window: number, scores: Float64Array, policy: ReturnType<typeof calibrate>['policy']): Uint8Array {
  const decider = new HysteresisDecider(policy);
  const out = new Uint8Array(table.rows);
  for (let i = 0; i < scores.length; i++) {
    const row = i + window - 1;
    decider.decide('loo', table.timestamps ? table.timestamps[row]! : row, scores[i]!);
    out[row] = decider.isRaised('loo') ? 1 : 0;
  }
  return out;
}

const sum = (parts: Confusion[]): Confusion =>
  parts.reduce((t, c) => ({ tp: t.tp + c.tp, fp: t.fp + c.fp, fn: t.fn + c.fn, tn: t.tn + c.tn }), { tp: 0, fp: 0, fn: 0, tn: 0 });

/**
 * The selection rule, the same for every fold: the highest pooled F1 over `files` among the candidates
 * whose FAR pooled over each group of `constraints` is at most `maxFar`; if none is, the lowest
 * worst-group FAR. Ties go to the earlier candidate in grid order.
 */
export function choose(counts: CountTable, allowed: boolean[], files: number[], constraints: number[][], maxFar: number): number {
  const { data } = counts;
  let best = -1;
  let bestKey0 = Number.NEGATIVE_INFINITY;
  let bestKey1 = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < counts.candidates; k++) {
    if (!allowed[k]) continue;
    const base = k * counts.files;
    let worst = 0;
    for (const group of constraints) {
      let fp = 0;
      let tn = 0;
      for (const f of group) {
        fp += data[(base + f) * 4 + 1]!;
        tn += data[(base + f) * 4 + 3]!;
      }
      worst = Math.max(worst, fp + tn === 0 ? 0 : (fp / (fp + tn)) * 100);
    }
    let key0 = 0;
    let key1 = -worst;
    if (worst <= maxFar) {
      let tp = 0;
      let wrong = 0;
      for (const f of files) {
        const at = (base + f) * 4;
        tp += data[at]!;
        wrong += data[at + 1]! + data[at + 2]!;
      }
      key0 = 1;
      key1 = tp + wrong / 2 === 0 ? 0 : tp / (tp + wrong / 2);
    }
    if (key0 > bestKey0 || (key0 === bestKey0 && key1 > bestKey1)) {
      best = k;
      bestKey0 = key0;
      bestKey1 = key1;
    }
  }
  if (best < 0) throw new Error('no candidate in the grid for this variant');
  return best;
}

/** Trains on the first rows as `sentinel train` would and replays the whole file through the daemon's stages. */
async function replayWith(file: LoadedFile, detector: DetectorOptions): Promise<{ counts: Confusion; raised: number; anomaly: Uint8Array }> {
  const { window, ...rest } = detector;
  const trained = trainModel(headOf(file.table, SKAB_TRAIN_ROWS), { window, detector: rest, source: file.path, name: 'loo' });
  const scorer = await createScorer(trained.onnx, trained.manifest, file.path, replayScorerOptions);
  try {
    const { anomaly } = await replayTable(scorer, file.table);
    let raised = 0;
    for (let row = SKAB_TRAIN_ROWS; row < file.table.rows; row++) if (anomaly[row] === 1 && anomaly[row - 1] === 0) raised++;
    return { counts: countConfusion(anomaly, file.labels, SKAB_TRAIN_ROWS), raised, anomaly };
  } finally {
    await scorer.release();
  }
}

interface FaultEnd {
  overlapping: number;
  /** Resolve row − first row after the fault; null when the alert was still open at the end, NaN when none overlapped. */
  delay: number | null;
}

/** Per labelled fault (a run of 1s from `from` on): the alerts overlapping it and when the last of them resolved. */
export function faultEnds(anomaly: Uint8Array, labels: Uint8Array, from: number): FaultEnd[] {
  const out: FaultEnd[] = [];
  const rows = labels.length;
  for (let s = from; s < rows; s++) {
    if (labels[s] !== 1 || (s > from && labels[s - 1] === 1)) continue;
    let e = s;
    while (e + 1 < rows && labels[e + 1] === 1) e++;
    let overlapping = 0;
    let last = -1;
    for (let r = s; r <= e; r++) {
      if (anomaly[r] === 1 && (r === s || anomaly[r - 1] === 0)) overlapping++;
      if (anomaly[r] === 1) last = r;
    }
    if (last < 0) {
      out.push({ overlapping, delay: Number.NaN });
      continue;
    }
    let end = last;
    while (end < rows && anomaly[end] === 1) end++;
    out.push({ overlapping, delay: end === rows ? null : end - (e + 1) });
  }
  return out;
}

const median = (values: number[]): number => {
  if (values.length === 0) return Number.NaN;
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

function faultTiming(ends: FaultEnd[]): FaultTiming {
  const closed = ends.filter((e): e is { overlapping: number; delay: number } => e.delay !== null && !Number.isNaN(e.delay)).map((e) => e.delay);
  return {
    faults: ends.length,
    raisedPerFault: ends.length === 0 ? 0 : ends.reduce((n, e) => n + e.overlapping, 0) / ends.length,
    missed: ends.filter((e) => e.overlapping === 0).length,
    medianResolveDelay: median(closed),
    medianResolveDistance: median(closed.map(Math.abs)),
    openAtEnd: ends.filter((e) => e.delay === null).length,
  };
}

function loadFiles(folder: string, label: string): LoadedFile[] {
  const files: LoadedFile[] = [];
  for (const path of csvFiles(folder)) {
    const table = readTable(path);
    const labels = table.labels[label];
    if (!labels) continue;
    if (table.rows <= SKAB_TRAIN_ROWS) throw new Error(`${path}: ${table.rows} rows, needs more than ${SKAB_TRAIN_ROWS}`);
    files.push({ path, table, labels });
  }
  if (files.length < 2) throw new Error(`${folder}: leave-one-file-out needs at least 2 labelled CSV files (with a "${label}" column)`);
  return files;
}

/** SKAB-length pieces of a normal recording, each labelled all normal. */
function normalSegments(table: Table): LoadedFile[] {
  const out: LoadedFile[] = [];
  for (let from = 0; from + NORMAL_SEGMENT_ROWS <= table.rows; from += NORMAL_SEGMENT_ROWS) {
    out.push({ path: `${table.source} rows ${from}..${from + NORMAL_SEGMENT_ROWS - 1}`, table: sliceOf(table, from, NORMAL_SEGMENT_ROWS), labels: new Uint8Array(NORMAL_SEGMENT_ROWS) });
  }
  return out;
}

export async function leaveOneFileOut(folder: string, options: LooOptions = {}): Promise<LooReport> {
  const family = options.family;
  const ofFamily = (fit: FitOptions): boolean => family === undefined || fit.family === family;
  const grids = (options.grid === undefined ? LOO_GRIDS : Array.isArray(options.grid) ? options.grid : [options.grid]).filter((g) => g.fit.some(ofFamily));
  const maxFar = options.maxFar ?? MAX_FAR;
  const normalRule = options.normalRule ?? 'report';
  const progress = options.onProgress ?? (() => {});
  const files = loadFiles(folder, options.label ?? 'anomaly');
  const normal = options.normalFile === undefined ? null : readTable(options.normalFile);
  if (normal !== null && normal.rows < NORMAL_SEGMENT_ROWS) throw new Error(`${options.normalFile}: ${normal.rows} rows, needs at least ${NORMAL_SEGMENT_ROWS}`);
  const segments = normal === null ? [] : normalSegments(normal);
  const whole: LoadedFile[] = normal === null ? [] : [{ path: normal.source, table: normal, labels: new Uint8Array(normal.rows) }];
  const variants = (options.variants ?? LOO_VARIANTS).filter((v) => v.fixed === undefined || ofFamily(v.fixed));
  const ruleOf = (v: LooVariant): ChoiceRule => v.rule ?? (normalRule === 'select' ? 'pooled' : 'labelled');
  if (normal === null && variants.some((v) => ruleOf(v) !== 'labelled')) throw new Error('choosing by normal running needs a normal recording');

  const total = grids.reduce((n, g) => n + g.fit.length * g.policy.length, 0);
  progress(`searching ${total} candidates on ${files.length} files, ${segments.length} normal segments and the whole normal file`);
  const started = performance.now();
  const { candidates, counts } = searchCounts([...files, ...segments, ...whole], grids);
  const searchMs = performance.now() - started;
  progress(`search took ${(searchMs / 1000).toFixed(1)} s`);
  const all = files.map((_, i) => i);
  const segmentIndices = segments.map((_, i) => files.length + i);
  const wholeIndex = files.length + segments.length;
  const results: VariantResult[] = [];
  for (const variant of variants) {
    progress(`${variant.name}: choosing and replaying`);
    const rule = ruleOf(variant);
    const allowed = candidates.map((c) => ofFamily(c) && (variant.allows?.(c) ?? false));
    const pick = (without: number | null): DetectorOptions => {
      if (variant.fixed) return variant.fixed;
      const labelled = all.filter((f) => f !== without);
      const constraints =
        rule === 'labelled' ? [labelled]
        : rule === 'pooled' ? [[...labelled, ...segmentIndices]]
        : rule === 'segments' ? [labelled, segmentIndices]
        : [labelled, segmentIndices, [wholeIndex]];
      return candidates[choose(counts, allowed, labelled, constraints, maxFar)]!;
    };
    const inSampleChoice = pick(null);
    const inSample: Confusion[] = [];
    const folds: VariantResult['folds'] = [];
    const ends: FaultEnd[] = [];
    for (let i = 0; i < files.length; i++) {
      inSample.push((await replayWith(files[i]!, inSampleChoice)).counts);
      const choice = pick(i);
      const replayed = await replayWith(files[i]!, choice);
      ends.push(...faultEnds(replayed.anomaly, files[i]!.labels, SKAB_TRAIN_ROWS));
      folds.push({ file: files[i]!.path, choice, counts: replayed.counts });
    }
    results.push({
      name: variant.name,
      inSample: report(sum(inSample)),
      inSampleChoice,
      leaveOneOut: report(sum(folds.map((f) => f.counts))),
      folds,
      timing: faultTiming(ends),
      normal: normal === null ? null : await normalRunning(normal, segments, inSampleChoice),
      rule,
    });
  }
  return { variants: results, files: files.length, candidates: candidates.length, maxFar, normalRule, searchMs };
}

async function normalRunning(table: Table, segments: LoadedFile[], detector: DetectorOptions): Promise<NormalRunning> {
  const { counts, raised } = await replayWith({ path: table.source, table, labels: new Uint8Array(table.rows) }, detector);
  const ts = table.timestamps;
  const seconds = ts ? (ts[table.rows - 1]! - ts[SKAB_TRAIN_ROWS]!) / 1000 : table.rows - SKAB_TRAIN_ROWS;
  const perSegment: Confusion[] = [];
  for (const segment of segments) perSegment.push((await replayWith(segment, detector)).counts);
  return {
    rows: table.rows - SKAB_TRAIN_ROWS,
    falseAlarmRate: report(counts).far,
    alertsPerDay: (raised * 86_400) / Math.max(seconds, 1),
    segments: segments.length,
    segmentFalseAlarmRate: report(sum(perSegment)).far,
  };
}

const RULE_NOTES: Record<ChoiceRule, string> = {
  labelled: 'FAR <= limit on the labelled files',
  pooled: 'FAR <= limit pooled over the labelled files and the normal segments',
  segments: 'FAR <= limit on the labelled files and on the normal segments',
  'segments-and-file': 'FAR <= limit on the labelled files, the normal segments and the whole normal file',
};

export function formatLoo(result: LooReport): string {
  const pct = (v: number) => v.toFixed(1);
  const lines = [
    `Leave-one-file-out over ${result.files} files, ${result.candidates} candidates (search ${(result.searchMs / 1000).toFixed(1)} s); ` +
      `each choice: highest pooled F1 among the candidates within the rule's FAR limit (${result.maxFar} %)`,
    '',
    '| Detector | rule | in-sample F1 | FAR % | LOO F1 | FAR % | MAR % | LOO TP / FP / FN / TN | normal segments FAR % | normal file FAR % | raised/day (normal) | raised per fault | median resolve − label end (rows) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of result.variants) {
    const l = r.leaveOneOut;
    const n = r.normal;
    const t = r.timing;
    lines.push(
      `| ${r.name} | ${r.rule} | ${r.inSample.f1.toFixed(3)} | ${pct(r.inSample.far)} | ${l.f1.toFixed(3)} | ${pct(l.far)} | ${pct(l.mar)} | ` +
        `${l.tp} / ${l.fp} / ${l.fn} / ${l.tn} | ${n ? pct(n.segmentFalseAlarmRate) : '–'} | ${n ? pct(n.falseAlarmRate) : '–'} | ${n ? n.alertsPerDay.toFixed(0) : '–'} | ` +
        `${t.raisedPerFault.toFixed(2)} | ${Number.isNaN(t.medianResolveDelay) ? '–' : `${t.medianResolveDelay} (abs ${t.medianResolveDistance})`}${t.openAtEnd > 0 ? `, ${t.openAtEnd} open at end` : ''} |`,
    );
  }
  lines.push('', 'Rules:');
  for (const rule of new Set(result.variants.map((r) => r.rule))) lines.push(`- ${rule}: ${RULE_NOTES[rule]}`);
  lines.push('', 'Choices on every file (what `sentinel train` would ship), and how many folds chose the same:');
  for (const r of result.variants) {
    const same = r.folds.filter((f) => describeDetector(f.choice) === describeDetector(r.inSampleChoice)).length;
    lines.push(`- ${r.name}: ${describeDetector(r.inSampleChoice)} (${same} of ${r.folds.length})`);
  }
  return lines.join('\n');
}
