/**
 * Leave-one-file-out over a folder of SKAB files: every hyperparameter is chosen on the other files,
 * the held-out file is scored through the daemon's decision path, and the counts are summed.
 */
import { channelColumn, readTable, type Table } from '../data/table.js';
import { HysteresisDecider } from '../../decide/hysteresis.js';
import { createScorer } from '../../model/scorer.js';
import { fitTests, levelScores, testSeries, windowFeatures } from '../train/baseline-tests.js';
import { calibrate, quantile, raiseThresholdFrom } from '../train/calibrate.js';
import { describeDetector, type DetectorOptions, type FitOptions, type PolicyOptions } from '../train/detector.js';
import { fitDetector, trainModel } from '../train/trainer.js';
import { scoreRows } from '../train/window-pca.js';
import { countConfusion, replayScorerOptions, replayTable, report, type Confusion, type DetectionReport } from './replay.js';
import { SKAB_TRAIN_ROWS, csvFiles, headOf, sliceOf } from './skab.js';

/** The choices searched: every fit option with every policy option (one such product per family). */
export interface LooGrid {
  fit: FitOptions[];
  policy: PolicyOptions[];
}

/** A detector family to report: a name and the part of the grid it may choose from, or one fixed choice. */
export interface LooVariant {
  name: string;
  allows?(candidate: DetectorOptions): boolean;
  fixed?: DetectorOptions;
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

export function policyGrid(
  quantiles: number[],
  multipliers: number[],
  clearRatios: number[],
  resolves: number[],
  tests: { spike: number[]; noise: number[]; stuck: number[] } = { spike: [OFF], noise: [OFF], stuck: [OFF] },
): PolicyOptions[] {
  return product([quantiles, multipliers, tests.spike, tests.noise, tests.stuck, clearRatios, resolves]).map(
    ([thresholdQuantile, thresholdMultiplier, spikeMultiplier, noiseMultiplier, stuckMultiplier, clearRatio, resolveAfter]) => ({
      thresholdQuantile: thresholdQuantile!,
      thresholdMultiplier: thresholdMultiplier!,
      spikeMultiplier: spikeMultiplier!,
      noiseMultiplier: noiseMultiplier!,
      stuckMultiplier: stuckMultiplier!,
      clearRatio: clearRatio!,
      resolveAfter: resolveAfter!,
    }),
  );
}

export const LOO_GRIDS: LooGrid[] = [
  {
    fit: testsFitGrid([10, 20, 30], [100, 200], [null, 200, 600, 2000]),
    policy: policyGrid([1], [1.5, 2, 3, 4, 6, 8], [1, 0.5], [1, 5, 10, 20, 30, 45], { spike: [2, 3, 5, OFF], noise: [2, 3, 5, OFF], stuck: [3, OFF] }),
  },
  { fit: pcaFitGrid([10, 15, 20, 30, 40], ['moment'], [0]), policy: policyGrid([0.99, 1], [1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20], [1, 0.5, 0.25], [1, 5, 10, 20, 30, 45, 60]) },
];

const isTests = (d: Pick<FitOptions, 'family'>): boolean => d.family === 'baseline-tests';

export const LOO_VARIANTS: LooVariant[] = [
  { name: 'window-pca-t2q, fixed choice made on valve1 by hand (before)', fixed: FIXED_BEFORE_LOO },
  { name: 'window-pca-t2q, window and policy chosen (shipped before issue 12 part 2)', allows: (d) => !isTests(d) },
  { name: 'baseline-tests, every option', allows: isTests },
  { name: 'baseline-tests, fixed baseline (no half-life)', allows: (d) => isTests(d) && d.halfLifeRows === null },
  { name: 'baseline-tests, level test only', allows: (d) => isTests(d) && !Number.isFinite(d.spikeMultiplier) && !Number.isFinite(d.noiseMultiplier) && !Number.isFinite(d.stuckMultiplier) },
];

/** Most pooled false alarms a choice may make on the files it is chosen on (%), as the target. */
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
  normal: NormalRunning | null;
}

export interface LooReport {
  variants: VariantResult[];
  files: number;
  candidates: number;
  maxFar: number;
  normalRule: 'report' | 'select';
}

interface LoadedFile {
  path: string;
  table: Table;
  labels: Uint8Array;
}

/**
 * Counts per candidate (grid order) per file, from the trainer's own scores and the daemon's hysteresis.
 * For baseline-tests the search follows the baseline with no alert holding it (the replay that gives
 * the reported figures holds it): a held baseline would make every policy need its own pass.
 */
function searchCounts(files: LoadedFile[], grids: LooGrid[]): { candidates: DetectorOptions[]; counts: Confusion[][] } {
  const candidates: DetectorOptions[] = [];
  const counts: Confusion[][] = [];
  for (const grid of grids) {
    const part = grid.fit.some(isTests) ? searchTests(files, grid) : searchPca(files, grid);
    candidates.push(...part.candidates);
    counts.push(...part.counts);
  }
  return { candidates, counts };
}

function searchTests(files: LoadedFile[], grid: LooGrid): { candidates: DetectorOptions[]; counts: Confusion[][] } {
  const candidates: DetectorOptions[] = [];
  const counts: Confusion[][] = [];
  for (const fit of grid.fit) {
    const perFile = files.map((f) => {
      const detector = { ...DEFAULT_TESTS_POLICY, ...fit };
      const columns = f.table.channels.map((name) => channelColumn(f.table, name));
      const fitted = fitTests(columns, f.table.channels, SKAB_TRAIN_ROWS, detector);
      const features = windowFeatures(fitted.rule, columns, fit.window, f.table.rows);
      const [, spike, noise, stuck] = testSeries(fitted, features, 1);
      return { heldOut: Float64Array.from(fitted.heldOut).sort(), level: levelScores(fitted.level, features), spike: spike!, noise: noise!, stuck: stuck!, end: features.end };
    });
    for (const policy of grid.policy) {
      candidates.push({ ...fit, ...policy });
      counts.push(
        files.map((f, i) => {
          const p = perFile[i]!;
          const invLevel = 1 / raiseThresholdFrom(quantile(p.heldOut, policy.thresholdQuantile), policy.thresholdMultiplier);
          const inv = (m: number): number => (Number.isFinite(m) ? 1 / m : 0);
          const iS = inv(policy.spikeMultiplier);
          const iN = inv(policy.noiseMultiplier);
          const iT = inv(policy.stuckMultiplier);
          const predicted = new Uint8Array(f.table.rows);
          let raised = false;
          let below = 0;
          let row = 0;
          for (let k = 0; k < p.end.length; k++) {
            const end = p.end[k]!;
            for (; row < end; row++) predicted[row] = raised ? 1 : 0;
            const score = Math.max(p.level[k]! * invLevel, p.spike[k]! * iS, p.noise[k]! * iN, p.stuck[k]! * iT);
            if (!raised) {
              if (score >= 1) {
                raised = true;
                below = 0;
              }
            } else {
              below = score < policy.clearRatio ? below + 1 : 0;
              if (below >= policy.resolveAfter) raised = false;
            }
          }
          for (; row < f.table.rows; row++) predicted[row] = raised ? 1 : 0;
          return countConfusion(predicted, f.labels, SKAB_TRAIN_ROWS);
        }),
      );
    }
  }
  return { candidates, counts };
}

const DEFAULT_TESTS_POLICY = { thresholdQuantile: 1, thresholdMultiplier: 1, spikeMultiplier: OFF, noiseMultiplier: OFF, stuckMultiplier: OFF, clearRatio: 1, resolveAfter: 1 };

function searchPca(files: LoadedFile[], grid: LooGrid): { candidates: DetectorOptions[]; counts: Confusion[][] } {
  const candidates: DetectorOptions[] = [];
  const counts: Confusion[][] = [];
  for (const fit of grid.fit) {
    const perFile = files.map((f) => fitAndScore(f.table, fit));
    for (const policy of grid.policy) {
      candidates.push({ ...fit, ...policy });
      counts.push(
        files.map((f, i) => {
          const { heldOut, scores } = perFile[i]!;
          const predicted = decide(f.table, fit.window, scores, calibrate(heldOut, policy).policy);
          return countConfusion(predicted, f.labels, SKAB_TRAIN_ROWS);
        }),
      );
    }
  }
  return { candidates, counts };
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
 * whose FAR pooled over `files` and `normal` (files without faults) is at most `maxFar`; if none is, the
 * lowest such FAR. Ties go to the earlier candidate in grid order.
 */
export function choose(counts: Confusion[][], allowed: boolean[], files: number[], normal: number[], maxFar: number): number {
  let best = -1;
  let bestKey = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (let k = 0; k < counts.length; k++) {
    if (!allowed[k]) continue;
    const labelled = sum(files.map((f) => counts[k]![f]!));
    const far = report(sum([labelled, ...normal.map((f) => counts[k]![f]!)])).far;
    const key = far <= maxFar ? [1, report(labelled).f1] : [0, -far];
    if (key[0]! > bestKey[0]! || (key[0] === bestKey[0] && key[1]! > bestKey[1]!)) {
      best = k;
      bestKey = key;
    }
  }
  if (best < 0) throw new Error('no candidate in the grid for this variant');
  return best;
}

/** Trains on the first rows as `sentinel train` would and replays the whole file through the daemon's stages. */
async function replayWith(file: LoadedFile, detector: DetectorOptions): Promise<{ counts: Confusion; raised: number }> {
  const { window, ...rest } = detector;
  const trained = trainModel(headOf(file.table, SKAB_TRAIN_ROWS), { window, detector: rest, source: file.path, name: 'loo' });
  const scorer = await createScorer(trained.onnx, trained.manifest, file.path, replayScorerOptions);
  try {
    const result = await replayTable(scorer, file.table);
    let raised = 0;
    for (let row = SKAB_TRAIN_ROWS; row < file.table.rows; row++) if (result.anomaly[row] === 1 && result.anomaly[row - 1] === 0) raised++;
    return { counts: countConfusion(result.anomaly, file.labels, SKAB_TRAIN_ROWS), raised };
  } finally {
    await scorer.release();
  }
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
  const grids = options.grid === undefined ? LOO_GRIDS : Array.isArray(options.grid) ? options.grid : [options.grid];
  const maxFar = options.maxFar ?? MAX_FAR;
  const normalRule = options.normalRule ?? 'report';
  const progress = options.onProgress ?? (() => {});
  const files = loadFiles(folder, options.label ?? 'anomaly');
  const normal = options.normalFile === undefined ? null : readTable(options.normalFile);
  if (normal !== null && normal.rows < NORMAL_SEGMENT_ROWS) throw new Error(`${options.normalFile}: ${normal.rows} rows, needs at least ${NORMAL_SEGMENT_ROWS}`);
  if (normal === null && normalRule === 'select') throw new Error('choosing by normal running needs a normal recording');
  const segments = normal === null ? [] : normalSegments(normal);

  const total = grids.reduce((n, g) => n + g.fit.length * g.policy.length, 0);
  progress(`searching ${total} candidates on ${files.length} files and ${segments.length} normal segments`);
  const { candidates, counts } = searchCounts([...files, ...segments], grids);
  const all = files.map((_, i) => i);
  const normalIndices = normalRule === 'select' ? segments.map((_, i) => files.length + i) : [];
  const variants: VariantResult[] = [];
  for (const variant of options.variants ?? LOO_VARIANTS) {
    progress(`${variant.name}: choosing and replaying`);
    const allowed = candidates.map((c) => variant.allows?.(c) ?? false);
    const pick = (without: number | null): DetectorOptions =>
      variant.fixed ?? candidates[choose(counts, allowed, all.filter((f) => f !== without), normalIndices, maxFar)]!;
    const inSampleChoice = pick(null);
    const inSample: Confusion[] = [];
    const folds: VariantResult['folds'] = [];
    for (let i = 0; i < files.length; i++) {
      inSample.push((await replayWith(files[i]!, inSampleChoice)).counts);
      const choice = pick(i);
      folds.push({ file: files[i]!.path, choice, counts: (await replayWith(files[i]!, choice)).counts });
    }
    variants.push({
      name: variant.name,
      inSample: report(sum(inSample)),
      inSampleChoice,
      leaveOneOut: report(sum(folds.map((f) => f.counts))),
      folds,
      normal: normal === null ? null : await normalRunning(normal, segments, inSampleChoice),
    });
  }
  return { variants, files: files.length, candidates: candidates.length, maxFar, normalRule };
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

export function formatLoo(result: LooReport): string {
  const pct = (v: number) => v.toFixed(1);
  const lines = [
    `Leave-one-file-out over ${result.files} files, ${result.candidates} candidates; each choice: highest pooled F1 with pooled FAR <= ${result.maxFar} %` +
      (result.normalRule === 'select' ? ' (normal-running segments included in the FAR)' : ''),
    '',
    '| Detector | in-sample F1 | FAR % | LOO F1 | FAR % | MAR % | LOO TP / FP / FN / TN | normal segments FAR % | normal file FAR % | alerts/day |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of result.variants) {
    const l = r.leaveOneOut;
    const n = r.normal;
    lines.push(
      `| ${r.name} | ${r.inSample.f1.toFixed(3)} | ${pct(r.inSample.far)} | ${l.f1.toFixed(3)} | ${pct(l.far)} | ${pct(l.mar)} | ` +
        `${l.tp} / ${l.fp} / ${l.fn} / ${l.tn} | ${n ? pct(n.segmentFalseAlarmRate) : '–'} | ${n ? pct(n.falseAlarmRate) : '–'} | ${n ? n.alertsPerDay.toFixed(0) : '–'} |`,
    );
  }
  lines.push('', 'Choices on every file (what `sentinel train` would ship), and how many folds chose the same:');
  for (const r of result.variants) {
    const same = r.folds.filter((f) => describeDetector(f.choice) === describeDetector(r.inSampleChoice)).length;
    lines.push(`- ${r.name}: ${describeDetector(r.inSampleChoice)} (${same} of ${r.folds.length})`);
  }
  return lines.join('\n');
}
