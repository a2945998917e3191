/**
 * Sliding windows: per stream, the last N rows of every channel in a fixed ring buffer.
 *
 * Ordering rules (documented in README "Windows"):
 * - a reading with a payload ts older than the stream's last row is rejected as out_of_order;
 *   one with the same ts as the last row is a duplicate (a QoS 1 redelivery) and rejected;
 *   readings stamped with receive time are never rejected for order.
 * - single-channel readings are assembled into rows: a row is committed once every channel has a
 *   value; if a channel repeats before that, the row is committed with the missing channels carried
 *   forward from the previous row.
 * - a stream silent for staleAfterMs is stale (a data gap); when it speaks again its window restarts,
 *   so no window ever spans a gap. Streams silent for idleTtlMs are evicted.
 */
import type { Normalization } from '../model/manifest.js';
import type { Reading, RejectReason } from '../ingest/reading.js';

export interface WindowOptions {
  window: number;
  channels: number;
  maxStreams: number;
  staleAfterMs: number;
  idleTtlMs: number;
  normalization: Normalization;
}

export class StreamWindow {
  readonly rows: Float32Array;
  /** Next row to write in the ring. */
  head = 0;
  filled = 0;
  lastTs = Number.NEGATIVE_INFINITY;
  /** Monotonic receive time of the reading that completed the newest row. */
  lastReceivedAt = 0;
  lastSeen: number;
  stale = false;
  /** The row being assembled from single-channel readings; allocated on the first such reading. */
  pending: PendingRow | null = null;

  constructor(
    readonly streamId: string,
    window: number,
    channels: number,
    now: number,
  ) {
    this.rows = new Float32Array(window * channels);
    this.lastSeen = now;
  }
}

class PendingRow {
  readonly values: Float32Array;
  readonly ts: Float64Array;
  readonly mask: Uint8Array;
  count = 0;

  constructor(channels: number) {
    this.values = new Float32Array(channels);
    this.ts = new Float64Array(channels);
    this.mask = new Uint8Array(channels);
  }

  clear(): void {
    this.mask.fill(0);
    this.count = 0;
  }
}

export type PushOutcome = StreamWindow | 'filling' | Extract<RejectReason, 'out_of_order' | 'duplicate' | 'stream_limit'>;

export interface SweepResult {
  becameStale: string[];
  evicted: string[];
}

export class WindowStore {
  private readonly streams = new Map<string, StreamWindow>();
  private readonly mean: Float32Array | null;
  private readonly invStd: Float32Array | null;
  private staleStreams = 0;
  /** Streams that came back after a gap, since the store started. */
  gapsClosed = 0;
  /** One-channel models commit every reading as a row straight from here. */
  private readonly single = new Float32Array(1);

  constructor(private readonly options: WindowOptions) {
    const norm = options.normalization;
    this.mean = norm.kind === 'zscore' ? Float32Array.from(norm.mean) : null;
    this.invStd = norm.kind === 'zscore' ? Float32Array.from(norm.std, (s) => 1 / s) : null;
  }

  get size(): number {
    return this.streams.size;
  }

  get staleCount(): number {
    return this.staleStreams;
  }

  /** Adds a reading; returns the stream's window when a new full window is ready to score. */
  push(reading: Reading, now: number): PushOutcome {
    let stream = this.streams.get(reading.streamId);
    if (stream === undefined) {
      if (this.streams.size >= this.options.maxStreams) return 'stream_limit';
      stream = new StreamWindow(reading.streamId, this.options.window, this.options.channels, now);
      this.streams.set(reading.streamId, stream);
    } else if (stream.stale) {
      this.restart(stream);
      this.gapsClosed++;
    }
    if (reading.tsFromPayload && reading.ts <= stream.lastTs) {
      return reading.ts === stream.lastTs ? 'duplicate' : 'out_of_order';
    }
    stream.lastSeen = now;
    if (reading.values !== null) return this.commit(stream, reading.values, reading.ts, reading.receivedAt);
    if (this.options.channels === 1) {
      this.single[0] = reading.value;
      return this.commit(stream, this.single, reading.ts, reading.receivedAt);
    }
    return this.pushPoint(stream, reading);
  }

  private pushPoint(stream: StreamWindow, reading: Reading): PushOutcome {
    const pending = (stream.pending ??= new PendingRow(this.options.channels));
    const ch = reading.channel;
    let outcome: PushOutcome = 'filling';
    if (pending.mask[ch] === 1) {
      if (reading.tsFromPayload && pending.ts[ch] === reading.ts) return 'duplicate';
      if (stream.filled > 0) outcome = this.commitCarried(stream, pending, reading.receivedAt);
      else pending.clear();
    }
    pending.values[ch] = reading.value;
    pending.ts[ch] = reading.ts;
    if (pending.mask[ch] === 0) {
      pending.mask[ch] = 1;
      pending.count++;
    }
    if (pending.count === this.options.channels) {
      outcome = this.commit(stream, pending.values, maxOf(pending.ts), reading.receivedAt);
      pending.clear();
    }
    return outcome;
  }

  /** Commits the pending row with missing channels carried forward from the newest row. */
  private commitCarried(stream: StreamWindow, pending: PendingRow, receivedAt: number): PushOutcome {
    const channels = this.options.channels;
    const prev = ((stream.head - 1 + this.options.window) % this.options.window) * channels;
    let ts = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < channels; c++) {
      if (pending.mask[c] === 0) pending.values[c] = stream.rows[prev + c] as number;
      else if ((pending.ts[c] as number) > ts) ts = pending.ts[c] as number;
    }
    const outcome = this.commit(stream, pending.values, ts, receivedAt);
    pending.clear();
    return outcome;
  }

  private commit(stream: StreamWindow, row: Float32Array, ts: number, receivedAt: number): PushOutcome {
    const channels = this.options.channels;
    stream.rows.set(row.length === channels ? row : row.subarray(0, channels), stream.head * channels);
    stream.head = (stream.head + 1) % this.options.window;
    if (stream.filled < this.options.window) stream.filled++;
    stream.lastTs = Math.max(stream.lastTs, ts);
    stream.lastReceivedAt = receivedAt;
    return stream.filled === this.options.window ? stream : 'filling';
  }

  private restart(stream: StreamWindow): void {
    stream.stale = false;
    this.staleStreams--;
    stream.filled = 0;
    stream.head = 0;
    stream.pending?.clear();
  }

  /** Copies the stream's window, oldest row first, into target at offset (normalised if the manifest says so). */
  copyWindow(stream: StreamWindow, target: Float32Array, offset: number): void {
    const { window, channels } = this.options;
    const split = stream.head * channels;
    const tail = stream.rows.subarray(split);
    target.set(tail, offset);
    target.set(stream.rows.subarray(0, split), offset + tail.length);
    if (this.mean !== null && this.invStd !== null) {
      const end = offset + window * channels;
      for (let i = offset, c = 0; i < end; i++) {
        target[i] = ((target[i] as number) - (this.mean[c] as number)) * (this.invStd[c] as number);
        if (++c === channels) c = 0;
      }
    }
  }

  /** Marks streams silent past staleAfterMs as stale and evicts those silent past idleTtlMs. */
  sweep(now: number): SweepResult {
    const result: SweepResult = { becameStale: [], evicted: [] };
    for (const stream of this.streams.values()) {
      const silent = now - stream.lastSeen;
      if (silent >= this.options.idleTtlMs) {
        if (stream.stale) this.staleStreams--;
        this.streams.delete(stream.streamId);
        result.evicted.push(stream.streamId);
      } else if (!stream.stale && silent >= this.options.staleAfterMs) {
        stream.stale = true;
        this.staleStreams++;
        result.becameStale.push(stream.streamId);
      }
    }
    return result;
  }
}

function maxOf(values: Float64Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v > max) max = v;
  return max;
}
