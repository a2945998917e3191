/**
 * Replays a recorded table through the daemon's own window store, scorer and hysteresis decider, row
 * by row in time order, and counts point-wise hits against a label column.
 */
import { channelColumn, type Table } from '../data/table.js';
import { HysteresisDecider } from '../decide/hysteresis.js';
import type { Reading } from '../ingest/reading.js';
import type { Scorer } from '../model/scorer.js';
import { WindowStore } from '../window/window-store.js';

export interface ReplayResult {
  /** Score of the window ending at each row; NaN while the window is still filling. */
  scores: Float32Array;
  /** 1 where the decision state is `raised` after the row's window. */
  anomaly: Uint8Array;
  /** Rows the window store turned away (timestamps repeated or going backwards). */
  rejectedRows: number;
}

export interface ReplayOptions {
  /** Windows per model run; the scores do not depend on it. */
  batchSize?: number;
}

const REPLAY_STREAM = 'replay';

export async function replayTable(scorer: Scorer, table: Table, options: ReplayOptions = {}): Promise<ReplayResult> {
  const { manifest } = scorer;
  const columns = manifest.channels.map((name) => channelColumn(table, name));
  const channels = columns.length;
  const batchSize = options.batchSize ?? 1024;
  const windowValues = manifest.window * channels;
  const windows = new WindowStore({
    window: manifest.window,
    channels,
    maxStreams: 1,
    // Replay has no wall clock: staleness and eviction are the daemon's, driven by silence in real time.
    staleAfterMs: Number.POSITIVE_INFINITY,
    idleTtlMs: Number.POSITIVE_INFINITY,
    normalization: manifest.normalization,
  });
  const decider = new HysteresisDecider(manifest.policy);
  const scores = new Float32Array(table.rows).fill(Number.NaN);
  const anomaly = new Uint8Array(table.rows);
  const input = new Float32Array(batchSize * windowValues);
  const slotRow = new Int32Array(batchSize);
  const rowTs = new Float64Array(table.rows);
  let slots = 0;
  let decidedUpTo = 0;
  let rejectedRows = 0;

  const decideUpTo = (endRow: number, batchScores: Float32Array | null): void => {
    let slot = 0;
    for (let row = decidedUpTo; row < endRow; row++) {
      if (batchScores !== null && slot < slots && slotRow[slot] === row) {
        const score = batchScores[slot++] as number;
        scores[row] = score;
        decider.decide(REPLAY_STREAM, rowTs[row] as number, score);
      }
      anomaly[row] = decider.isRaised(REPLAY_STREAM) ? 1 : 0;
    }
    decidedUpTo = endRow;
  };
  const flush = async (endRow: number): Promise<void> => {
    const out = slots > 0 ? await scorer.score(input, slots) : null;
    decideUpTo(endRow, out?.scores ?? null);
    slots = 0;
  };

  for (let row = 0; row < table.rows; row++) {
    const values = new Float32Array(channels);
    for (let c = 0; c < channels; c++) values[c] = (columns[c] as Float64Array)[row] as number;
    const ts = table.timestamps ? (table.timestamps[row] as number) : row;
    rowTs[row] = ts;
    const reading: Reading = { streamId: REPLAY_STREAM, ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values };
    const outcome = windows.push(reading, 0);
    if (typeof outcome === 'number') {
      windows.copyWindow(outcome, input, slots * windowValues);
      slotRow[slots++] = row;
      if (slots === batchSize) await flush(row + 1);
    } else if (outcome !== 'filling') {
      rejectedRows++;
    }
  }
  await flush(table.rows);
  return { scores, anomaly, rejectedRows };
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

export function formatReport(r: DetectionReport): string {
  return [
    `TP ${r.tp}  FP ${r.fp}  FN ${r.fn}  TN ${r.tn}`,
    `precision ${r.precision.toFixed(3)}  recall ${r.recall.toFixed(3)}  F1 ${r.f1.toFixed(3)}`,
    `FAR ${r.far.toFixed(2)} %  MAR ${r.mar.toFixed(2)} %`,
  ].join('\n');
}
