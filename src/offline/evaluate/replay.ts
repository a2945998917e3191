/**
 * Replays a recorded table through the daemon's own stages — window store, micro-batcher, model and
 * decision stage — row by row in time order, and counts point-wise hits against a label column. One
 * pipeline, two drivers: the daemon feeds these stages from MQTT, this feeds them from a table.
 */
import type { Alert } from '../../alert/alert.js';
import { MicroBatcher } from '../../batch/micro-batcher.js';
import { channelColumn, type Table } from '../data/table.js';
import { DecisionStage } from '../../decide/decision-stage.js';
import type { Reading } from '../../ingest/reading.js';
import type { Manifest } from '../../model/manifest.js';
import type { LoadModelOptions, Scorer } from '../../model/scorer.js';
import { WindowStore } from '../../window/window-store.js';

export interface ReplayResult {
  /** Score of the window ending at each row; NaN while the window is still filling. */
  scores: Float32Array;
  /** 1 where the decision state is `raised` after the row's window. */
  anomaly: Uint8Array;
  /** Rows the window store turned away (timestamps repeated or going backwards). */
  rejectedRows: number;
}

export interface ReplayOptions {
  /** Most windows per model run; the scores do not depend on it (a model with a per-stream baseline runs one window at a time). */
  batchSize?: number;
}

/** How `evaluate` and `eval-skab` load a model: on the CPU, one thread. */
export const replayScorerOptions: LoadModelOptions = { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 1, maxBatch: 1024 };

const REPLAY_STREAM = 'replay';
/** Batches go when full or when the run before them ends, never by a timer (setTimeout's longest delay). */
const NO_DELAY_LIMIT = 2_147_483_647;

/** The decision stage as the daemon's pipeline wires it: an open alert holds the stream's baseline. */
function replayDecisions(
  manifest: Manifest,
  windows: WindowStore,
  hooks: { onError(err: Error): void; onDecided(index: number, score: number, raised: boolean): void },
): DecisionStage {
  return new DecisionStage(
    manifest,
    { nodeName: 'replay', topChannels: 0 },
    {
      onAlert: (alert) => windows.holdBaseline(alert.streamId, alert.type === 'raised'),
      onSaturated: () => {},
      onError: (err) => hooks.onError(err instanceof Error ? err : new Error(String(err))),
      onDecided: hooks.onDecided,
    },
  );
}

/** The model's channels from the table, and a one-stream window store as the daemon's pipeline makes it. */
function replayStore(manifest: Manifest, table: Table): { columns: Float64Array[]; channels: number; windows: WindowStore } {
  const columns = manifest.channels.map((name) => channelColumn(table, name));
  const windows = new WindowStore({
    window: manifest.window,
    channels: columns.length,
    maxStreams: 1,
    // Replay has no wall clock: staleness and eviction are the daemon's, driven by silence in real time.
    staleAfterMs: Number.POSITIVE_INFINITY,
    idleTtlMs: Number.POSITIVE_INFINITY,
    normalization: manifest.normalization,
    baseline: manifest.baseline,
  });
  return { columns, channels: columns.length, windows };
}

export async function replayTable(scorer: Scorer, table: Table, options: ReplayOptions = {}): Promise<ReplayResult> {
  const { manifest } = scorer;
  if (manifest.baseline !== undefined) return replayInStep(scorer, table);
  const { columns, channels, windows } = replayStore(manifest, table);
  const scores = new Float32Array(table.rows).fill(Number.NaN);
  // Per row: 0 no window decided there, 1 decided and left closed, 2 decided and left raised.
  const decided = new Uint8Array(table.rows);
  // The rows whose windows were handed to the batcher and not yet decided, oldest first.
  const pendingRows: number[] = [];
  let pendingHead = 0;
  let failure: Error | null = null;
  let batchStart = 0;

  const decisions = replayDecisions(manifest, windows, {
    onError: (err) => (failure ??= err),
    onDecided: (index, score, raised) => {
      const row = pendingRows[batchStart + index] as number;
      scores[row] = score;
      decided[row] = raised ? 2 : 1;
    },
  });
  let capacity: (() => void) | null = null;
  const batcher = new MicroBatcher(
    scorer,
    windows,
    { maxSize: Math.max(1, options.batchSize ?? 1024), maxDelayMs: NO_DELAY_LIMIT },
    {
      onScored: ({ batch, output, scorer: by }) => {
        batchStart = pendingHead;
        decisions.decideBatch(batch, output, by.manifest);
        pendingHead += batch.size;
      },
      onFailed: (batch, err) => {
        failure ??= err;
        pendingHead += batch.size;
      },
      onCapacity: () => {
        const resume = capacity;
        capacity = null;
        resume?.();
      },
      onError: (err) => (failure ??= err),
    },
  );

  let rejectedRows = 0;
  for (let row = 0; row < table.rows && failure === null; row++) {
    const values = new Float32Array(channels);
    for (let c = 0; c < channels; c++) values[c] = (columns[c] as Float64Array)[row] as number;
    const ts = table.timestamps ? (table.timestamps[row] as number) : row;
    const reading: Reading = { streamId: REPLAY_STREAM, ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values };
    const outcome = windows.push(reading, 0);
    if (typeof outcome === 'number') {
      while (!batcher.canAccept()) await new Promise<void>((resolve) => (capacity = resolve));
      pendingRows.push(row);
      batcher.add(outcome);
    } else if (outcome !== 'filling') {
      rejectedRows++;
    }
  }
  await batcher.drain();
  if (failure !== null) throw failure;

  // A row without a window of its own keeps the state the last decision left.
  const anomaly = new Uint8Array(table.rows);
  let raised = 0;
  for (let row = 0; row < table.rows; row++) {
    if (decided[row] !== 0) raised = decided[row] === 2 ? 1 : 0;
    anomaly[row] = raised;
  }
  return { scores, anomaly, rejectedRows };
}

/**
 * A model with a per-stream baseline, replayed as the daemon runs it: each window is decided before
 * the stream's next row is pushed (in the daemon a stream's rows come seconds apart and a batch waits
 * at most maxDelayMs), so an open alert holds the baseline from the next row on. With batches in
 * flight, decisions would reach the baseline a batch late — on a SKAB file, never.
 */
async function replayInStep(scorer: Scorer, table: Table): Promise<ReplayResult> {
  const { manifest } = scorer;
  const { columns, channels, windows } = replayStore(manifest, table);
  const scores = new Float32Array(table.rows).fill(Number.NaN);
  const anomaly = new Uint8Array(table.rows);
  let failure: Error | null = null;
  let row = 0;
  let raised = 0;
  const decisions = replayDecisions(manifest, windows, {
    onError: (err) => (failure ??= err),
    onDecided: (_index, score, open) => {
      scores[row] = score;
      raised = open ? 1 : 0;
    },
  });
  const batcher = new MicroBatcher(
    scorer,
    windows,
    { maxSize: 1, maxDelayMs: 0 },
    {
      onScored: ({ batch, output, scorer: by }) => decisions.decideBatch(batch, output, by.manifest),
      onFailed: (_batch, err) => (failure ??= err),
      onCapacity: () => {},
      onError: (err) => (failure ??= err),
    },
  );
  let rejectedRows = 0;
  const values = new Float32Array(channels);
  for (; row < table.rows && failure === null; row++) {
    for (let c = 0; c < channels; c++) values[c] = columns[c]![row]!;
    const ts = table.timestamps ? table.timestamps[row]! : row;
    const outcome = windows.push({ streamId: REPLAY_STREAM, ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values }, 0);
    if (typeof outcome === 'number') {
      batcher.add(outcome);
      await batcher.drain();
    } else if (outcome !== 'filling') {
      rejectedRows++;
    }
    anomaly[row] = raised;
  }
  if (failure !== null) throw failure;
  return { scores, anomaly, rejectedRows };
}

/**
 * The --decisions CSV: one line per input row with its window's score (empty while filling), `raised`
 * (1 while an alert is open after the row) and the label beside it, under the label column's own name
 * so the two can be compared in any spreadsheet. With `withFile`, a first column names the file.
 */
export function decisionsCsv(entries: ReadonlyArray<{ table: Table; evaluation: TableEvaluation }>, label: string, withFile = false): string {
  const lines = [`${withFile ? 'file,' : ''}row,timestamp,score,raised,${csvCell(label)}`];
  for (const { table, evaluation } of entries) {
    const { scores, raised, labels } = evaluation;
    const prefix = withFile ? `${csvCell(evaluation.figures.file)},` : '';
    for (let row = 0; row < table.rows; row++) {
      const ts = table.timestamps ? new Date(table.timestamps[row] as number).toISOString() : '';
      const score = scores[row] as number;
      lines.push(`${prefix}${row},${ts},${Number.isNaN(score) ? '' : score},${raised[row]},${labels[row]}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** A CSV cell: quoted when it holds a delimiter, a quote or a line break (file names may). */
function csvCell(text: string): string {
  return /[",;\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface DetectionReport extends Confusion {
  precision: number;
  recall: number;
  f1: number;
  /** False alarm rate: % of normal points flagged. */
  far: number;
  /** Missed alarm rate: % of anomalous points not flagged. */
  mar: number;
}

export function countConfusion(predicted: Uint8Array, labels: Uint8Array, from = 0, into?: Confusion): Confusion {
  const c = into ?? { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let row = from; row < labels.length; row++) {
    const p = predicted[row] === 1;
    const a = labels[row] === 1;
    if (p && a) c.tp++;
    else if (p) c.fp++;
    else if (a) c.fn++;
    else c.tn++;
  }
  return c;
}

const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den);

/** F1 as the SKAB leaderboard defines it: TP / (TP + (FN + FP) / 2). */
export function report(c: Confusion): DetectionReport {
  return {
    ...c,
    precision: ratio(c.tp, c.tp + c.fp),
    recall: ratio(c.tp, c.tp + c.fn),
    f1: ratio(c.tp, c.tp + (c.fn + c.fp) / 2),
    far: ratio(c.fp, c.fp + c.tn) * 100,
    mar: ratio(c.fn, c.fn + c.tp) * 100,
  };
}

/** One file's row of the per-file table: figures over the rows counted, and the alerts in them. */
export interface FileFigures extends DetectionReport {
  file: string;
  /** Rows counted against the labels (under the SKAB protocol: those after the training rows). */
  rows: number;
  /** Alerts raised and resolved within the rows counted. */
  raised: number;
  resolved: number;
}

/** The pooled row: counts summed over files and the figures computed from the sums, never averaged. */
export interface PooledFigures extends Omit<FileFigures, 'file'> {
  files: number;
}

/**
 * Alerts raised and resolved in rows [from, end): each change of the decision state is one alert (a
 * row holds at most one window, so at most one decision). Before row 0 no alert is open.
 */
export function alertCounts(state: Uint8Array, from = 0): { raised: number; resolved: number } {
  let raised = 0;
  let resolved = 0;
  let previous = from > 0 ? state[from - 1] : 0;
  for (let row = from; row < state.length; row++) {
    const now = state[row];
    if (now !== previous) {
      if (now === 1) raised++;
      else resolved++;
    }
    previous = now;
  }
  return { raised, resolved };
}

export function fileFigures(file: string, state: Uint8Array, labels: Uint8Array, from = 0): FileFigures {
  return { file, rows: Math.max(0, labels.length - from), ...report(countConfusion(state, labels, from)), ...alertCounts(state, from) };
}

export function pooledFigures(files: readonly FileFigures[]): PooledFigures {
  const sum = { tp: 0, fp: 0, fn: 0, tn: 0, rows: 0, raised: 0, resolved: 0 };
  for (const f of files) for (const key of Object.keys(sum) as Array<keyof typeof sum>) sum[key] += f[key];
  return { files: files.length, ...sum, ...report(sum) };
}

/** One labelled table replayed and counted: what the per-file table, the JSON and the HTML report show. */
export interface TableEvaluation {
  figures: FileFigures;
  /** Score per row (NaN while the window fills). */
  scores: Float32Array;
  /** Decision state per row: 1 while an alert is open. */
  raised: Uint8Array;
  labels: Uint8Array;
  /** First row counted; rows before it were the training rows (SKAB) and are drawn shaded. */
  from: number;
  thresholds: { raise: number; clear: number };
  rejectedRows: number;
}

export interface EvaluateTableOptions {
  /** The file's name in tables and reports. */
  file: string;
  label: string;
  /** First row counted (default 0). */
  from?: number;
}

/** The label column of a table, or an error that names the file, the labels it has and the fix. */
export function labelColumn(table: Table, label: string): Uint8Array {
  const labels = table.labels[label];
  if (labels) return labels;
  const have = Object.keys(table.labels).join(', ') || 'none';
  throw new Error(`${table.source} has no label column "${label}" (labels: ${have}); pass --label, or leave unlabelled files out of the folder`);
}

export async function evaluateTable(scorer: Scorer, table: Table, options: EvaluateTableOptions): Promise<TableEvaluation> {
  const labels = labelColumn(table, options.label);
  const from = options.from ?? 0;
  const result = await replayTable(scorer, table);
  const { policy } = scorer.manifest;
  return {
    figures: fileFigures(options.file, result.anomaly, labels, from),
    scores: result.scores,
    raised: result.anomaly,
    labels,
    from,
    thresholds: { raise: policy.raiseThreshold, clear: policy.clearThreshold },
    rejectedRows: result.rejectedRows,
  };
}

/** One recorded row of one stream. */
export interface StreamRow {
  streamId: string;
  ts: number;
  values: Float32Array;
}

/**
 * Replays rows of many streams, in the order given, through the daemon's window store, batcher, model
 * and decision stage (an open alert holds its stream's baseline, as in the daemon); returns every alert.
 */
export async function replayStreams(scorer: Scorer, rows: Iterable<StreamRow>, options: ReplayOptions & { maxStreams?: number } = {}): Promise<Alert[]> {
  const { manifest } = scorer;
  const windows = new WindowStore({
    window: manifest.window,
    channels: manifest.channels.length,
    maxStreams: options.maxStreams ?? 100_000,
    staleAfterMs: Number.POSITIVE_INFINITY,
    idleTtlMs: Number.POSITIVE_INFINITY,
    normalization: manifest.normalization,
    baseline: manifest.baseline,
  });
  const alerts: Alert[] = [];
  let failure: Error | null = null;
  const decisions = new DecisionStage(
    manifest,
    { nodeName: 'replay', topChannels: 3 },
    {
      onAlert: (alert) => {
        windows.holdBaseline(alert.streamId, alert.type === 'raised');
        alerts.push(alert);
      },
      onSaturated: () => {},
      onError: (err) => (failure ??= err instanceof Error ? err : new Error(String(err))),
    },
  );
  let capacity: (() => void) | null = null;
  const batcher = new MicroBatcher(
    scorer,
    windows,
    { maxSize: Math.max(1, options.batchSize ?? 1024), maxDelayMs: NO_DELAY_LIMIT },
    {
      onScored: ({ batch, output, scorer: by }) => decisions.decideBatch(batch, output, by.manifest),
      onFailed: (_batch, err) => (failure ??= err),
      onCapacity: () => {
        const resume = capacity;
        capacity = null;
        resume?.();
      },
      onError: (err) => (failure ??= err),
    },
  );
  for (const row of rows) {
    if (failure !== null) break;
    const reading: Reading = { streamId: row.streamId, ts: row.ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values: row.values };
    const outcome = windows.push(reading, 0);
    if (typeof outcome === 'number') {
      while (!batcher.canAccept()) await new Promise<void>((resolve) => (capacity = resolve));
      batcher.add(outcome);
    }
  }
  await batcher.drain();
  if (failure !== null) throw failure;
  return alerts;
}
