/**
 * Per-stream drift and input quality: exponentially weighted statistics of each channel against a
 * reference mean and std — the training statistics, or, for a model with per-stream baselines, the
 * stream's own first readings — in typed arrays by slot (mirroring the window store's slots), with
 * bands, hysteresis and band-change events. See docs/drift.md for the measure and its defaults.
 */
import type { Reading, RejectReason } from '../ingest/reading.js';
import { driftBands, nextBand, qualityBands, type DriftBand, type QualityBand } from './bands.js';
import type { ChannelStats, DriftConfig } from './config.js';
import { rounded, type BandChange, type DriftSnapshot, type DriftSummary } from './wire.js';

export interface DriftTrackerOptions {
  /** Slots the tracker holds: the window store's maxStreams. */
  maxStreams: number;
  /** The model's channels, in manifest order (the order of Reading.values and Reading.channel). */
  channels: readonly string[];
  /** Training statistics; null when the model has none (input quality is still tracked). */
  stats: ChannelStats | null;
  /**
   * Measure each stream against its own first `readings` readings instead (a model with per-stream
   * baselines: its streams run at operating points of their own, and the baseline follows slow drift,
   * which is then reported here, not as a fault). `minScale`: per channel, the smallest std. Wins over stats.
   */
  streamReference?: { readings: number; minScale: readonly number[] } | null;
  config: DriftConfig;
  /** Called, synchronously, when a stream changes drift or quality band (not for warming → ok). Must not throw. */
  onBandChange?: (change: BandChange) => void;
}

/** The most streams top() names, whatever it is asked for. */
export const TOP_MAX = 100;

/** Slots allocated up front; the arrays double from here as streams arrive. */
const INITIAL_SLOTS = 256;
const WARMING = 0;
const ACCEPTED = 0;
const REJECTED = 1;
const NON_FINITE = 2;

function tally(counts: Int32Array, band: number, by: number): void {
  counts[band] = (counts[band] as number) + by;
}

export class DriftTracker {
  /** Whether the model carries training statistics, so drift is measured. */
  readonly hasReference: boolean;
  private readonly channels: readonly string[];
  private readonly channelCount: number;
  private readonly mu: Float64Array;
  private readonly invSigma: Float64Array;
  /** Readings of its own each stream's reference is taken from; 0: the training statistics are the reference. */
  private readonly referenceReadings: number;
  private readonly minScale: Float64Array;
  private readonly alpha: number;
  private readonly minReadings: number;
  /** Counts stop here: from then on the weight is alpha and warm-up is over. */
  private readonly countCap: number;
  private readonly clip: number;
  private readonly hysteresis: number;
  private readonly driftThresholds: Float64Array;
  private readonly qualityThresholds: Float64Array;
  private readonly topN: number;
  private readonly onBandChange: ((change: BandChange) => void) | undefined;

  private ids: Array<string | undefined>;
  private readonly slotById = new Map<string, number>();
  private readonly maxStreams: number;
  /** record()'s own slots: freed ones, and the next never used. */
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  /** One past the highest slot ever bound: where scans stop. */
  private scanEnd = 0;
  /** Per slot and channel, side by side: weighted mean of z and of z². */
  private moments: Float64Array;
  /** Per slot and channel: readings seen (up to countCap), squared drift (-1 while warming). */
  private seen: Uint32Array;
  private channelDrift2: Float32Array;
  /**
   * Per slot and channel, side by side, with a per-stream reference: the sum and sum of squares of its
   * first readings, then (once referenceCount reaches referenceReadings) their mean and 1 / std.
   */
  private reference: Float64Array;
  private referenceCount: Uint32Array;
  /** Per slot: drift (max over channels, -1 while warming), the channel it is from, drift band. */
  private drift: Float32Array;
  private driftChannel: Int32Array;
  private band: Uint8Array;
  /** Per slot: weighted share of rejected and of non-finite readings, readings counted, quality band. */
  private rejected: Float64Array;
  private nonFinite: Float64Array;
  private outcomes: Uint32Array;
  private quality: Uint8Array;
  private readonly bandTally = new Int32Array(driftBands.length);
  private readonly qualityTally = new Int32Array(qualityBands.length);
  private readonly topSlots = new Int32Array(TOP_MAX);
  private readonly topKeys = new Float64Array(TOP_MAX);

  constructor(options: DriftTrackerOptions) {
    const { maxStreams, channels, stats, config } = options;
    if (!Number.isInteger(maxStreams) || maxStreams < 1) throw new Error(`drift: maxStreams ${maxStreams} — fix: pass the window store's maxStreams (an integer >= 1)`);
    if (channels.length === 0) throw new Error('drift: no channels — fix: pass the manifest\'s channels');
    const c = channels.length;
    this.channels = channels.slice();
    this.channelCount = c;
    this.mu = new Float64Array(c);
    this.invSigma = new Float64Array(c);
    const own = options.streamReference ?? null;
    this.referenceReadings = own === null ? 0 : own.readings;
    this.minScale = new Float64Array(c);
    this.hasReference = stats !== null || own !== null;
    if (own !== null) {
      if (!Number.isInteger(own.readings) || own.readings < 2) throw new Error(`drift: stream reference of ${own.readings} readings — fix: at least 2 (the baseline's warmupRows)`);
      if (own.minScale.length !== c || own.minScale.some((v) => !(v > 0) || !Number.isFinite(v))) {
        throw new Error(`drift: minScale needs one finite value > 0 per channel (${c}) — fix: pass the manifest baseline's minScale`);
      }
      this.minScale.set(own.minScale);
    } else if (stats !== null) {
      for (let i = 0; i < c; i++) {
        const name = channels[i] as string;
        const at = stats.channels.indexOf(name);
        const mean = stats.mean[at];
        const std = stats.std[at];
        if (at < 0 || mean === undefined || std === undefined) {
          throw new Error(`training.stats: channel "${name}" has no mean and std — fix: give every model channel a mean and std, or leave training.stats out`);
        }
        if (!Number.isFinite(mean) || !Number.isFinite(std) || std <= 0) {
          throw new Error(`training.stats: channel "${name}" has mean ${mean}, std ${std} — fix: a finite mean and a finite std > 0`);
        }
        this.mu[i] = mean;
        this.invSigma[i] = 1 / std;
      }
    }
    this.alpha = 2 / (config.horizon + 1);
    this.minReadings = config.minReadings;
    this.countCap = Math.max(config.minReadings, Math.ceil(1 / this.alpha));
    this.clip = config.clip;
    this.hysteresis = config.hysteresis;
    this.driftThresholds = Float64Array.of(config.bands.moderate, config.bands.severe);
    this.qualityThresholds = Float64Array.of(config.quality.poorAbove);
    this.topN = config.topN;
    this.onBandChange = options.onBandChange;

    this.maxStreams = maxStreams;
    // The arrays grow with the streams seen (doubling, up to maxStreams): a node configured for 250k
    // streams that sees 300 holds 300 streams' worth, as the window store's slabs do.
    const initial = Math.min(maxStreams, INITIAL_SLOTS);
    this.ids = new Array<string | undefined>(initial).fill(undefined);
    this.moments = new Float64Array(initial * c * 2);
    this.seen = new Uint32Array(initial * c);
    this.channelDrift2 = new Float32Array(initial * c).fill(-1);
    this.reference = new Float64Array(this.referenceReadings > 0 ? initial * c * 2 : 0);
    this.referenceCount = new Uint32Array(this.referenceReadings > 0 ? initial * c : 0);
    this.drift = new Float32Array(initial).fill(-1);
    this.driftChannel = new Int32Array(initial).fill(-1);
    this.band = new Uint8Array(initial);
    this.rejected = new Float64Array(initial);
    this.nonFinite = new Float64Array(initial);
    this.outcomes = new Uint32Array(initial);
    this.quality = new Uint8Array(initial);
  }

  /** Slots the arrays hold now. */
  get capacity(): number {
    return this.drift.length;
  }

  /** Grows every per-slot array to hold `slot` (doubling, capped at maxStreams). */
  private ensure(slot: number): void {
    const held = this.drift.length;
    if (slot < held) return;
    if (slot >= this.maxStreams) throw new RangeError(`drift: slot ${slot} beyond maxStreams ${this.maxStreams}`);
    let size = held;
    while (size <= slot) size = Math.min(this.maxStreams, size * 2);
    const c = this.channelCount;
    const grow = <T extends Float64Array | Float32Array | Uint32Array | Int32Array | Uint8Array>(from: T, per: number, fill: number): T => {
      const to = new (from.constructor as new (n: number) => T)(size * per);
      to.set(from);
      if (fill !== 0) to.fill(fill, from.length);
      return to;
    };
    this.moments = grow(this.moments, 2 * c, 0);
    this.seen = grow(this.seen, c, 0);
    this.channelDrift2 = grow(this.channelDrift2, c, -1);
    if (this.referenceReadings > 0) {
      this.reference = grow(this.reference, 2 * c, 0);
      this.referenceCount = grow(this.referenceCount, c, 0);
    }
    this.drift = grow(this.drift, 1, -1);
    this.driftChannel = grow(this.driftChannel, 1, -1);
    this.band = grow(this.band, 1, 0);
    this.rejected = grow(this.rejected, 1, 0);
    this.nonFinite = grow(this.nonFinite, 1, 0);
    this.outcomes = grow(this.outcomes, 1, 0);
    this.quality = grow(this.quality, 1, 0);
    for (let i = held; i < size; i++) this.ids.push(undefined);
  }

  /**
   * A reading the pipeline took, by stream id: the tracker keeps slots of its own (at most maxStreams;
   * a stream beyond them is not tracked) and frees them through forget(). Use this or the slot API
   * (recordAccepted/reset), not both.
   */
  record(reading: Reading): void {
    let slot = this.slotById.get(reading.streamId);
    if (slot === undefined) {
      slot = this.freeSlots.pop() ?? (this.nextSlot < this.maxStreams ? this.nextSlot++ : -1);
      if (slot < 0) return;
    }
    this.recordAccepted(slot, reading);
  }

  /** Streams tracked now. */
  get size(): number {
    return this.slotById.size;
  }

  /**
   * A reading the window store took for the stream at `slot`. A slot that held another stream is
   * reset first, so reuse without reset() is safe. O(channels), allocates nothing (but the event).
   */
  recordAccepted(slot: number, reading: Reading): void {
    if (this.ids[slot] !== reading.streamId) {
      this.ensure(slot);
      this.bind(slot, reading.streamId);
    }
    let finite = true;
    const values = reading.values;
    if (values !== null) {
      for (let c = 0; c < this.channelCount; c++) if (!this.update(slot, c, values[c] as number)) finite = false;
    } else {
      finite = this.update(slot, reading.channel, reading.value);
    }
    if (this.hasReference) this.refreshDrift(slot, reading.ts);
    this.count(slot, finite ? ACCEPTED : NON_FINITE, reading.ts);
  }

  /**
   * A reading of a tracked stream that was turned away (`non_finite` counts as non-finite, every reason
   * as rejected). Returns false, counting nothing, for a stream the tracker does not hold: rejections
   * before a stream has a slot are only counted globally. `ts` is the reading's record time if known.
   */
  recordRejected(streamId: string, reason: RejectReason, ts = Number.NaN): boolean {
    const slot = this.slotById.get(streamId);
    if (slot === undefined) return false;
    this.count(slot, reason === 'non_finite' ? NON_FINITE : REJECTED, ts);
    return true;
  }

  /** Forgets the stream at `slot` (evicted, or the slot is about to hold another stream). No event. */
  reset(slot: number): void {
    if (slot < this.ids.length && this.ids[slot] !== undefined) this.clear(slot);
  }

  /** Forgets a stream by id (the window store reports evictions by id); false if it was not tracked. */
  forget(streamId: string): boolean {
    const slot = this.slotById.get(streamId);
    if (slot === undefined) return false;
    this.clear(slot);
    // Slots handed out by record() go back to its free list.
    if (slot < this.nextSlot) this.freeSlots.push(slot);
    return true;
  }

  /** Streams by drift band, for `sentinel_streams_by_drift_band`; all 0 when the model has no training statistics. */
  bandCounts(): Record<DriftBand, number> {
    const t = this.hasReference ? this.bandTally : new Int32Array(driftBands.length);
    return { warming: t[0] as number, ok: t[1] as number, moderate: t[2] as number, severe: t[3] as number };
  }

  /** Streams by input-quality band. */
  qualityCounts(): Record<QualityBand, number> {
    const t = this.qualityTally;
    return { warming: t[0] as number, ok: t[1] as number, poor: t[2] as number };
  }

  /**
   * The `n` (at most TOP_MAX) most drifting streams, most first; after those with a drift, the ones
   * with the largest share of rejected readings. Streams with neither are left out. O(streams × n).
   */
  top(n = this.topN): DriftSummary[] {
    const want = Math.max(0, Math.min(TOP_MAX, Math.floor(n)));
    const slots = this.topSlots;
    const keys = this.topKeys;
    let held = 0;
    if (want === 0) return [];
    for (let slot = 0; slot < this.scanEnd; slot++) {
      if (this.ids[slot] === undefined) continue;
      const drift = this.drift[slot] as number;
      // Every drift (>= 0) ranks above every share (<= 1).
      const key = drift >= 0 ? 2 + drift : (this.rejected[slot] as number);
      if (key <= 0 || (held === want && key <= (keys[held - 1] as number))) continue;
      let at = held < want ? held++ : held - 1;
      while (at > 0 && (keys[at - 1] as number) < key) {
        keys[at] = keys[at - 1] as number;
        slots[at] = slots[at - 1] as number;
        at--;
      }
      keys[at] = key;
      slots[at] = slot;
    }
    const out: DriftSummary[] = [];
    for (let i = 0; i < held; i++) out.push(this.summary(slots[i] as number));
    return out;
  }

  /** Where one stream stands, or undefined when it is not tracked. */
  stream(streamId: string): DriftSummary | undefined {
    const slot = this.slotById.get(streamId);
    return slot === undefined ? undefined : this.summary(slot);
  }

  /** Band counts and the top streams, for the status message and logs. */
  snapshot(n = this.topN): DriftSnapshot {
    return { bands: this.bandCounts(), quality: this.qualityCounts(), top: this.top(n) };
  }

  /** Adds one value of channel `c`; false when it is NaN or infinite (then it is left out of the averages). */
  private update(slot: number, c: number, value: number): boolean {
    // x - x is 0 for every finite x, NaN for NaN and ±Infinity.
    if (value - value !== 0) return false;
    if (!this.hasReference) return true;
    const i = slot * this.channelCount + c;
    let mu = this.mu[c] as number;
    let invSigma = this.invSigma[c] as number;
    if (this.referenceReadings > 0) {
      const reference = this.reference;
      const k = this.referenceCount[i] as number;
      if (k < this.referenceReadings) {
        // The stream's own reference: its first readings, as its baseline's warm-up takes them.
        const sum = (reference[2 * i] as number) + value;
        const squares = (reference[2 * i + 1] as number) + value * value;
        this.referenceCount[i] = k + 1;
        if (k + 1 < this.referenceReadings) {
          reference[2 * i] = sum;
          reference[2 * i + 1] = squares;
        } else {
          const mean = sum / (k + 1);
          const variance = squares / (k + 1) - mean * mean;
          reference[2 * i] = mean;
          reference[2 * i + 1] = 1 / Math.max(variance > 0 ? Math.sqrt(variance) : 0, this.minScale[c] as number);
        }
        return true;
      }
      mu = reference[2 * i] as number;
      invSigma = reference[2 * i + 1] as number;
    }
    let z = (value - mu) * invSigma;
    if (z > this.clip) z = this.clip;
    else if (z < -this.clip) z = -this.clip;
    let n = this.seen[i] as number;
    if (n < this.countCap) this.seen[i] = ++n;
    // A plain mean until 1/n falls to alpha, so early estimates are unbiased; then exponential.
    const w = n * this.alpha < 1 ? 1 / n : this.alpha;
    const moments = this.moments;
    const m = (moments[2 * i] as number) + w * (z - (moments[2 * i] as number));
    const q = (moments[2 * i + 1] as number) + w * (z * z - (moments[2 * i + 1] as number));
    moments[2 * i] = m;
    moments[2 * i + 1] = q;
    if (n >= this.minReadings) {
      const variance = q - m * m;
      const spread = (variance > 0 ? Math.sqrt(variance) : 0) - 1;
      this.channelDrift2[i] = m * m + spread * spread;
    }
    return true;
  }

  /** The stream's drift is its worst channel's; moves its band and reports a change. */
  private refreshDrift(slot: number, ts: number): void {
    const base = slot * this.channelCount;
    let worst = -1;
    let channel = -1;
    for (let c = 0; c < this.channelCount; c++) {
      const d2 = this.channelDrift2[base + c] as number;
      if (d2 > worst) {
        worst = d2;
        channel = c;
      }
    }
    if (worst >= 0) worst = Math.sqrt(worst);
    this.drift[slot] = worst;
    this.driftChannel[slot] = channel;
    if (worst < 0) return;
    const from = this.band[slot] as number;
    const to = nextBand(from === WARMING ? 1 : from, worst, this.driftThresholds, this.hysteresis);
    if (to === from) return;
    this.band[slot] = to;
    tally(this.bandTally, from, -1);
    tally(this.bandTally, to, 1);
    if (this.onBandChange !== undefined && (from !== WARMING || to !== 1)) this.emit(slot, 'drift', from, to, ts);
  }

  /** Counts one reading's outcome towards the stream's quality shares; moves its band and reports a change. */
  private count(slot: number, outcome: number, ts: number): void {
    let n = this.outcomes[slot] as number;
    if (n < this.countCap) this.outcomes[slot] = ++n;
    const w = n * this.alpha < 1 ? 1 / n : this.alpha;
    const rejected = this.rejected[slot] as number;
    const nonFinite = this.nonFinite[slot] as number;
    const share = rejected + w * ((outcome === ACCEPTED ? 0 : 1) - rejected);
    this.rejected[slot] = share;
    this.nonFinite[slot] = nonFinite + w * ((outcome === NON_FINITE ? 1 : 0) - nonFinite);
    if (n < this.minReadings) return;
    const from = this.quality[slot] as number;
    const to = nextBand(from === WARMING ? 1 : from, share, this.qualityThresholds, this.hysteresis);
    if (to === from) return;
    this.quality[slot] = to;
    tally(this.qualityTally, from, -1);
    tally(this.qualityTally, to, 1);
    if (this.onBandChange !== undefined && (from !== WARMING || to !== 1)) this.emit(slot, 'quality', from, to, ts);
  }

  private emit(slot: number, measure: 'drift' | 'quality', from: number, to: number, ts: number): void {
    const s = this.measures(slot);
    const at = Number.isNaN(ts) ? Date.now() : ts;
    const common = {
      streamId: this.ids[slot] as string,
      channel: s.channel,
      drift: s.drift,
      shift: s.shift,
      stdRatio: s.stdRatio,
      rejectedShare: this.rejected[slot] as number,
      nonFiniteShare: this.nonFinite[slot] as number,
      ts: at,
    };
    const change: BandChange =
      measure === 'drift'
        ? { measure, from: driftBands[from] as DriftBand, to: driftBands[to] as DriftBand, ...common }
        : { measure, from: qualityBands[from] as QualityBand, to: qualityBands[to] as QualityBand, ...common };
    this.onBandChange?.(change);
  }

  /** The worst channel's measures, or nulls while the stream is warming. */
  private measures(slot: number): { channel: string | null; drift: number | null; shift: number | null; stdRatio: number | null } {
    const c = this.driftChannel[slot] as number;
    const drift = this.drift[slot] as number;
    if (c < 0 || drift < 0) return { channel: null, drift: null, shift: null, stdRatio: null };
    const i = 2 * (slot * this.channelCount + c);
    const m = this.moments[i] as number;
    const variance = (this.moments[i + 1] as number) - m * m;
    return { channel: this.channels[c] as string, drift, shift: m, stdRatio: variance > 0 ? Math.sqrt(variance) : 0 };
  }

  private summary(slot: number): DriftSummary {
    const s = this.measures(slot);
    return {
      streamId: this.ids[slot] as string,
      band: this.hasReference ? (driftBands[this.band[slot] as number] as DriftBand) : 'warming',
      quality: qualityBands[this.quality[slot] as number] as QualityBand,
      channel: s.channel,
      drift: rounded(s.drift, 3),
      shift: rounded(s.shift, 3),
      stdRatio: rounded(s.stdRatio, 3),
      rejectedShare: rounded(this.rejected[slot] as number, 4) as number,
      nonFiniteShare: rounded(this.nonFinite[slot] as number, 4) as number,
    };
  }

  /** Gives `slot` to `streamId`, clearing what the slot, or the stream at another slot, held. */
  private bind(slot: number, streamId: string): void {
    if (this.ids[slot] !== undefined) this.clear(slot);
    const elsewhere = this.slotById.get(streamId);
    if (elsewhere !== undefined) this.clear(elsewhere);
    // A copy, so the key does not keep alive the topic it was cut from (as the window store does).
    const id = JSON.parse(JSON.stringify(streamId)) as string;
    this.ids[slot] = id;
    this.slotById.set(id, slot);
    if (slot >= this.scanEnd) this.scanEnd = slot + 1;
    tally(this.bandTally, WARMING, 1);
    tally(this.qualityTally, WARMING, 1);
  }

  private clear(slot: number): void {
    this.slotById.delete(this.ids[slot] as string);
    this.ids[slot] = undefined;
    tally(this.bandTally, this.band[slot] as number, -1);
    tally(this.qualityTally, this.quality[slot] as number, -1);
    const base = slot * this.channelCount;
    const end = base + this.channelCount;
    this.moments.fill(0, 2 * base, 2 * end);
    this.seen.fill(0, base, end);
    this.channelDrift2.fill(-1, base, end);
    if (this.referenceReadings > 0) {
      this.reference.fill(0, 2 * base, 2 * end);
      this.referenceCount.fill(0, base, end);
    }
    this.drift[slot] = -1;
    this.driftChannel[slot] = -1;
    this.band[slot] = WARMING;
    this.rejected[slot] = 0;
    this.nonFinite[slot] = 0;
    this.outcomes[slot] = 0;
    this.quality[slot] = WARMING;
  }
}
