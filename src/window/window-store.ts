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
 * - a row stamped more than futureRowToleranceMs ahead of the wall clock is not trusted to order
 *   what follows: an older reading then restarts the window (a clock step) instead of being rejected,
 *   so one reading from the future cannot blind a stream.
 * - the table is bounded by maxStreams and by maxBytes: when it is full, a new stream takes the place
 *   of a stale one (its window would restart anyway); only when none is stale is it rejected
 *   (stream_limit), so a flood of new ids can lock a real new sensor out for at most about staleAfterMs
 *   and never evicts a stream that is still reporting.
 * - with a per-stream baseline (manifest `baseline`, see baseline.ts) a stream's windows are scored once
 *   its warm-up rows are learned, normalised by its own location and scale; holdBaseline() holds it
 *   while the stream's alert is open. The baseline survives a data gap (the asset is the same one).
 */
import type { BaselineSpec, Normalization } from '../model/manifest.js';
import { BaselineRule, sameBaselineRule } from './baseline.js';
import type { Reading, RejectReason } from '../ingest/reading.js';

export interface WindowOptions {
  window: number;
  channels: number;
  maxStreams: number;
  staleAfterMs: number;
  idleTtlMs: number;
  normalization: Normalization;
  /** The manifest's per-stream baseline rule, if it has one. */
  baseline?: BaselineSpec;
  /** A newest row this far ahead of the wall clock no longer decides what is out of order (default 60 s). */
  futureRowToleranceMs?: number;
  /** Memory budget of the table in bytes (windows, ids, bookkeeping); default unbounded. */
  maxBytes?: number;
  /** A stream left the table to make room for a new one (not called for sweep() evictions, which it returns). */
  onEvicted?: (streamId: string) => void;
}

/** V8's cost of a table entry beyond its window: map entry, id slot, string header, slab scalars. */
const ENTRY_OVERHEAD_BYTES = 160;

/** A stream's place in the store: its index into the slabs. Valid until the stream is evicted. */
export type StreamSlot = number & { readonly __brand: 'StreamSlot' };

/**
 * Per-stream state for a fixed number of streams, as parallel typed arrays indexed by slot. With 100k
 * streams a Float32Array and an object per stream cost about 1 KB each in V8 (array headers, a
 * separate backing store, boxed doubles); packed into slabs a stream costs its rows plus 33 bytes.
 */
class StreamSlab {
  readonly rows: Float32Array;
  readonly lastTs: Float64Array;
  /** Monotonic receive time of the reading that completed the newest row. */
  readonly lastReceivedAt: Float64Array;
  readonly lastSeen: Float64Array;
  /** Next row to write in the stream's ring. */
  readonly head: Int32Array;
  readonly filled: Int32Array;
  readonly stale: Uint8Array;
  /** Per-stream baseline, `channels` values per stream (empty without a baseline): location and variance. */
  readonly loc: Float32Array;
  readonly vars: Float32Array;
  /** Rows learned into the baseline, counted up to the warm-up only. */
  readonly learned: Int32Array;
  /** Rows in the window already learned during warm-up: not learned again when they leave it. */
  readonly ahead: Int32Array;
  /** 1 while the stream's alert is open; rows held since. */
  readonly hold: Uint8Array;
  readonly heldRows: Int32Array;

  constructor(streams: number, rowValues: number, baselineValues: number) {
    this.rows = new Float32Array(streams * rowValues);
    this.lastTs = new Float64Array(streams);
    this.lastReceivedAt = new Float64Array(streams);
    this.lastSeen = new Float64Array(streams);
    this.head = new Int32Array(streams);
    this.filled = new Int32Array(streams);
    this.stale = new Uint8Array(streams);
    this.loc = new Float32Array(streams * baselineValues);
    this.vars = new Float32Array(streams * baselineValues);
    const perStream = baselineValues > 0 ? streams : 0;
    this.learned = new Int32Array(perStream);
    this.ahead = new Int32Array(perStream);
    this.hold = new Uint8Array(perStream);
    this.heldRows = new Int32Array(perStream);
  }
}

/** Slabs hold about this many bytes of rows, so a store with few wide streams stays small. */
const SLAB_ROW_BYTES = 256 * 1024;
const MAX_SLAB_STREAMS = 1024;

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

export type PushOutcome = StreamSlot | 'filling' | Extract<RejectReason, 'out_of_order' | 'duplicate' | 'stream_limit'>;

export interface SweepResult {
  becameStale: string[];
  evicted: string[];
}

export class WindowStore {
  private readonly slots = new Map<string, StreamSlot>();
  /** Stream id by slot; undefined for a free slot. */
  private readonly ids: Array<string | undefined> = [];
  private readonly slabs: StreamSlab[] = [];
  private readonly freeSlots: StreamSlot[] = [];
  /** Rows being assembled from single-channel readings, by slot; allocated on the first such reading. */
  private readonly pending: Array<PendingRow | undefined> = [];
  private readonly slabShift: number;
  private readonly slabMask: number;
  private readonly windowValues: number;
  private readonly mean: Float32Array | null;
  private readonly invStd: Float32Array | null;
  private baseline: BaselineRule | null;
  /** One stream's scale inverses, filled per window copy. */
  private readonly invScale: Float64Array;
  private staleStreams = 0;
  /** Streams that came back after a gap, since the store started. */
  gapsClosed = 0;
  /** Windows restarted by a clock step (see the module notes), since the store started. */
  clockSteps = 0;
  /** Streams evicted to make room for new ones, since the store started. */
  evictedForRoom = 0;
  /** Estimated bytes held by the table's streams. */
  private tableBytes = 0;
  private readonly streamBytes: number;
  private readonly maxBytes: number;
  private readonly futureRowToleranceMs: number;
  /** Slots marked stale by the last sweep, with their ids (a slot may have been reused since). */
  private staleSlots: StreamSlot[] = [];
  private staleIds: string[] = [];
  private staleNext = 0;
  /** One-channel models commit every reading as a row straight from here. */
  private readonly single = new Float32Array(1);

  constructor(private readonly options: WindowOptions) {
    const norm = options.normalization;
    this.mean = norm.kind === 'zscore' ? Float32Array.from(norm.mean) : null;
    this.invStd = norm.kind === 'zscore' ? Float32Array.from(norm.std, (s) => 1 / s) : null;
    this.baseline = options.baseline === undefined ? null : new BaselineRule(options.baseline);
    this.invScale = new Float64Array(options.channels);
    this.windowValues = options.window * options.channels;
    const fit = Math.max(1, Math.min(MAX_SLAB_STREAMS, Math.floor(SLAB_ROW_BYTES / (this.windowValues * 4))));
    this.slabShift = 31 - Math.clz32(fit);
    this.slabMask = (1 << this.slabShift) - 1;
    const pendingRow = options.channels > 1 ? options.channels * 13 + 96 : 0;
    const baselineBytes = this.baseline === null ? 0 : options.channels * 8 + 13;
    this.streamBytes = this.windowValues * 4 + ENTRY_OVERHEAD_BYTES + pendingRow + baselineBytes;
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.futureRowToleranceMs = options.futureRowToleranceMs ?? 60_000;
  }

  /** Estimated bytes the table holds now. */
  get bytes(): number {
    return this.tableBytes;
  }

  private costOf(streamId: string): number {
    return this.streamBytes + 2 * streamId.length;
  }

  private hasRoom(cost: number): boolean {
    return this.slots.size < this.options.maxStreams && this.tableBytes + cost <= this.maxBytes;
  }

  /** Evicts stale streams until `cost` fits; false when no stale stream is left to take. */
  private makeRoom(cost: number): boolean {
    while (!this.hasRoom(cost)) {
      if (this.staleNext >= this.staleSlots.length) return false;
      const slot = this.staleSlots[this.staleNext] as StreamSlot;
      const id = this.staleIds[this.staleNext] as string;
      this.staleNext++;
      if (this.ids[slot] !== id || this.slots.get(id) !== slot) continue;
      const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
      if (slab.stale[slot & this.slabMask] !== 1) continue;
      this.remove(id, slot);
      this.evictedForRoom++;
      this.options.onEvicted?.(id);
    }
    return true;
  }

  private remove(streamId: string, slot: StreamSlot): void {
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    if (slab.stale[slot & this.slabMask] === 1) {
      slab.stale[slot & this.slabMask] = 0;
      this.staleStreams--;
    }
    this.slots.delete(streamId);
    this.ids[slot] = undefined;
    this.pending[slot] = undefined;
    this.freeSlots.push(slot);
    this.tableBytes -= this.costOf(streamId);
  }

  get size(): number {
    return this.slots.size;
  }

  get staleCount(): number {
    return this.staleStreams;
  }

  /**
   * Adds a reading; returns the stream's slot when a new full window is ready to score. `now` is the
   * clock sweep() is given (the daemon uses the monotonic receive time).
   */
  push(reading: Reading, now: number): PushOutcome {
    let slot = this.slots.get(reading.streamId);
    if (slot === undefined) {
      const cost = this.costOf(reading.streamId);
      if (!this.hasRoom(cost) && !this.makeRoom(cost)) return 'stream_limit';
      slot = this.open(reading.streamId);
      this.tableBytes += cost;
    }
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    if (slab.stale[i] === 1) {
      this.restart(slot);
      this.gapsClosed++;
    }
    // Any message means the stream is talking, even one rejected for order (a redelivery): silence, and
    // so a data gap, is counted from it. Otherwise the gap it just closed would be reported again.
    slab.lastSeen[i] = now;
    const lastTs = slab.lastTs[i] as number;
    if (reading.tsFromPayload && reading.ts <= lastTs) {
      if (lastTs <= Date.now() + this.futureRowToleranceMs) return reading.ts === lastTs ? 'duplicate' : 'out_of_order';
      // The newest row came from the future: it, not this reading, is what is wrong.
      this.clockStep(slot);
    }
    if (reading.values !== null) return this.commit(slot, reading.values, reading.ts, reading.receivedAt);
    if (this.options.channels === 1) {
      this.single[0] = reading.value;
      return this.commit(slot, this.single, reading.ts, reading.receivedAt);
    }
    return this.pushPoint(slot, reading);
  }

  streamId(slot: StreamSlot): string {
    return this.ids[slot] as string;
  }

  /** Record time of the stream's newest row (epoch ms). */
  lastTs(slot: StreamSlot): number {
    return this.slabs[slot >>> this.slabShift]!.lastTs[slot & this.slabMask] as number;
  }

  lastReceivedAt(slot: StreamSlot): number {
    return this.slabs[slot >>> this.slabShift]!.lastReceivedAt[slot & this.slabMask] as number;
  }

  /** Takes a free slot, or the next one (with a new slab when the last is full). */
  private open(streamId: string): StreamSlot {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.ids.length as StreamSlot;
      if (slot >>> this.slabShift === this.slabs.length) {
        this.slabs.push(new StreamSlab(this.slabMask + 1, this.windowValues, this.baseline === null ? 0 : this.options.channels));
      }
    }
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    slab.head[i] = 0;
    slab.filled[i] = 0;
    slab.stale[i] = 0;
    slab.lastTs[i] = Number.NEGATIVE_INFINITY;
    slab.lastReceivedAt[i] = 0;
    if (this.baseline !== null) {
      slab.learned[i] = 0;
      slab.ahead[i] = 0;
      slab.hold[i] = 0;
      slab.heldRows[i] = 0;
    }
    // A copy, so the key does not keep alive the topic it was cut from (V8 slices and cons strings).
    const id = JSON.parse(JSON.stringify(streamId)) as string;
    this.ids[slot] = id;
    this.slots.set(id, slot);
    return slot;
  }

  private pushPoint(slot: StreamSlot, reading: Reading): PushOutcome {
    const pending = (this.pending[slot] ??= new PendingRow(this.options.channels));
    const ch = reading.channel;
    let outcome: PushOutcome = 'filling';
    if (pending.mask[ch] === 1) {
      if (reading.tsFromPayload && pending.ts[ch] === reading.ts) return 'duplicate';
      const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
      if ((slab.filled[slot & this.slabMask] as number) > 0) outcome = this.commitCarried(slot, pending, reading.receivedAt);
      else pending.clear();
    }
    pending.values[ch] = reading.value;
    pending.ts[ch] = reading.ts;
    if (pending.mask[ch] === 0) {
      pending.mask[ch] = 1;
      pending.count++;
    }
    if (pending.count === this.options.channels) {
      outcome = this.commit(slot, pending.values, maxOf(pending.ts), reading.receivedAt);
      pending.clear();
    }
    return outcome;
  }

  /** Commits the pending row with missing channels carried forward from the newest row. */
  private commitCarried(slot: StreamSlot, pending: PendingRow, receivedAt: number): PushOutcome {
    const { window, channels } = this.options;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    const prev = i * this.windowValues + (((slab.head[i] as number) - 1 + window) % window) * channels;
    let ts = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < channels; c++) {
      if (pending.mask[c] === 0) pending.values[c] = slab.rows[prev + c] as number;
      else if ((pending.ts[c] as number) > ts) ts = pending.ts[c] as number;
    }
    const outcome = this.commit(slot, pending.values, ts, receivedAt);
    pending.clear();
    return outcome;
  }

  private commit(slot: StreamSlot, row: Float32Array, ts: number, receivedAt: number): PushOutcome {
    const { window, channels } = this.options;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    const head = slab.head[i] as number;
    const rows = slab.rows;
    const at = i * this.windowValues + head * channels;
    const filled = slab.filled[i] as number;
    const rule = this.baseline;
    // The row about to be written over is the one leaving the window: the baseline learns it now.
    if (rule !== null && filled === window) this.learnLeaving(rule, slab, i, at);
    for (let c = 0; c < channels; c++) rows[at + c] = row[c] as number;
    slab.head[i] = head + 1 === window ? 0 : head + 1;
    if (filled < window) slab.filled[i] = filled + 1;
    if (ts > (slab.lastTs[i] as number)) slab.lastTs[i] = ts;
    slab.lastReceivedAt[i] = receivedAt;
    if (rule !== null) {
      const learned = slab.learned[i] as number;
      if (learned < rule.warmupRows) {
        rule.learn(slab.loc, slab.vars, i * channels, row, 0, channels, learned);
        slab.learned[i] = learned + 1;
        if (learned + 1 === rule.warmupRows) slab.ahead[i] = Math.min(filled + 1, window);
        return 'filling';
      }
    }
    return filled + 1 >= window ? slot : 'filling';
  }

  private learnLeaving(rule: BaselineRule, slab: StreamSlab, i: number, at: number): void {
    if ((slab.learned[i] as number) < rule.warmupRows) return;
    const ahead = slab.ahead[i] as number;
    if (ahead > 0) {
      slab.ahead[i] = ahead - 1;
      return;
    }
    if (slab.hold[i] === 1) {
      const held = slab.heldRows[i] as number;
      if (held < rule.maxHoldRows) {
        slab.heldRows[i] = held + 1;
        return;
      }
    }
    rule.learn(slab.loc, slab.vars, i * this.options.channels, slab.rows, at, this.options.channels, rule.warmupRows);
  }

  /**
   * A hot-swapped model's baseline rule. Only its scale floors (`minScale`, fitted to each model's
   * training data) may differ from the running rule: the streams' learned locations and scales stay
   * valid, so a retrained model swaps in without every stream warming up again. Throws otherwise
   * (swapIncompatibility refuses such a model first).
   */
  setBaselineFloors(spec: BaselineSpec): void {
    const rule = this.baseline;
    if (rule === null || !sameBaselineRule(rule.spec, spec)) throw new Error('setBaselineFloors: the baseline rule itself differs');
    this.baseline = new BaselineRule(spec);
  }

  /**
   * Holds the stream's baseline while its alert is open (`hold` true) and lets it follow again when the
   * alert closes. The pipeline calls it with every alert it decides; a stream not held is ignored.
   */
  holdBaseline(streamId: string, hold: boolean): void {
    if (this.baseline === null) return;
    const slot = this.slots.get(streamId);
    if (slot === undefined) return;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    slab.hold[i] = hold ? 1 : 0;
    slab.heldRows[i] = 0;
  }

  /** The stream's baseline location and scale per channel (for tests and inspection), or null when it has none yet. */
  baselineOf(streamId: string): { loc: number[]; scale: number[]; learned: number; held: boolean } | null {
    const slot = this.slots.get(streamId);
    if (this.baseline === null || slot === undefined) return null;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    const { channels } = this.options;
    const rule = this.baseline;
    const loc: number[] = [];
    const scale: number[] = [];
    for (let c = 0; c < channels; c++) {
      loc.push(slab.loc[i * channels + c] as number);
      scale.push(rule.scale(slab.vars[i * channels + c] as number, c));
    }
    return { loc, scale, learned: slab.learned[i] as number, held: slab.hold[i] === 1 };
  }

  private clockStep(slot: StreamSlot): void {
    this.emptyWindow(slot);
    this.slabs[slot >>> this.slabShift]!.lastTs[slot & this.slabMask] = Number.NEGATIVE_INFINITY;
    this.clockSteps++;
  }

  /** Record time of a stream's newest row, or undefined when the stream is not held. */
  lastTsOf(streamId: string): number | undefined {
    const slot = this.slots.get(streamId);
    return slot === undefined ? undefined : this.lastTs(slot);
  }

  private restart(slot: StreamSlot): void {
    this.slabs[slot >>> this.slabShift]!.stale[slot & this.slabMask] = 0;
    this.staleStreams--;
    this.emptyWindow(slot);
  }

  /** Drops the stream's rows and any half-built row; the next full window starts from scratch. */
  private emptyWindow(slot: StreamSlot): void {
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    slab.filled[i] = 0;
    slab.head[i] = 0;
    // Rows of the old window that warm-up learned are gone: nothing is waiting to be skipped.
    if (this.baseline !== null) slab.ahead[i] = 0;
    this.pending[slot]?.clear();
  }

  /** Copies the stream's window, oldest row first, into target at offset (normalised if the manifest says so). */
  copyWindow(slot: StreamSlot, target: Float32Array, offset: number): void {
    const { window, channels } = this.options;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    const rows = slab.rows;
    const start = i * this.windowValues;
    const split = start + (slab.head[i] as number) * channels;
    const end = start + this.windowValues;
    // Plain loops: two subarray views per window cost more than copying a few hundred floats.
    let k = offset;
    for (let j = split; j < end; j++) target[k++] = rows[j] as number;
    for (let j = start; j < split; j++) target[k++] = rows[j] as number;
    const rule = this.baseline;
    if (rule !== null) {
      const s0 = i * channels;
      const loc = slab.loc;
      const invScale = this.invScale;
      for (let c = 0; c < channels; c++) invScale[c] = 1 / rule.scale(slab.vars[s0 + c] as number, c);
      const last = offset + window * channels;
      for (let k = offset, c = 0; k < last; k++) {
        target[k] = ((target[k] as number) - (loc[s0 + c] as number)) * (invScale[c] as number);
        if (++c === channels) c = 0;
      }
    } else if (this.mean !== null && this.invStd !== null) {
      const last = offset + window * channels;
      for (let k = offset, c = 0; k < last; k++) {
        target[k] = ((target[k] as number) - (this.mean[c] as number)) * (this.invStd[c] as number);
        if (++c === channels) c = 0;
      }
    }
  }

  /** Marks streams silent past staleAfterMs as stale and evicts those silent past idleTtlMs. */
  /**
   * Marks a stream stale now (its source said it is gone, e.g. a Sparkplug death): a data gap, not an
   * anomaly. False when the stream is unknown or already stale. Its next reading restarts its window.
   */
  markStale(streamId: string): boolean {
    const slot = this.slots.get(streamId);
    if (slot === undefined) return false;
    const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
    const i = slot & this.slabMask;
    if (slab.stale[i] === 1) return false;
    slab.stale[i] = 1;
    this.staleStreams++;
    return true;
  }

  sweep(now: number): SweepResult {
    const result: SweepResult = { becameStale: [], evicted: [] };
    // The stale streams, longest-silent first, are the ones a new stream may take the place of.
    const stale: Array<{ slot: StreamSlot; id: string; lastSeen: number }> = [];
    for (const [streamId, slot] of this.slots) {
      const slab = this.slabs[slot >>> this.slabShift] as StreamSlab;
      const i = slot & this.slabMask;
      const silent = now - (slab.lastSeen[i] as number);
      if (silent >= this.options.idleTtlMs) {
        this.remove(streamId, slot);
        result.evicted.push(streamId);
        continue;
      }
      if (slab.stale[i] === 0 && silent >= this.options.staleAfterMs) {
        slab.stale[i] = 1;
        this.staleStreams++;
        result.becameStale.push(streamId);
      }
      if (slab.stale[i] === 1) stale.push({ slot, id: streamId, lastSeen: slab.lastSeen[i] as number });
    }
    stale.sort((a, b) => a.lastSeen - b.lastSeen);
    this.staleSlots = stale.map((s) => s.slot);
    this.staleIds = stale.map((s) => s.id);
    this.staleNext = 0;
    return result;
  }
}

function maxOf(values: Float64Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v > max) max = v;
  return max;
}
