import { describe, expect, it } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import { SeededRandom } from '../../src/offline/sim/random.js';
import { driftConfigSchema, type ChannelStats, type DriftConfig } from '../../src/drift/config.js';
import { DriftTracker, TOP_MAX } from '../../src/drift/tracker.js';
import type { BandChange, DriftSummary } from '../../src/drift/wire.js';

const CHANNELS = ['vibration', 'current', 'pressure'];
const STATS: ChannelStats = { channels: CHANNELS, mean: [10, -5, 100], std: [2, 0.5, 20] };
const defaults = (overrides: Record<string, unknown> = {}): DriftConfig => driftConfigSchema.parse(overrides);

/** Generated readings of one stream: Gaussian around the training statistics, with a chosen shift and scale per channel. */
class Generator {
  readonly shift = [0, 0, 0];
  readonly scale = [1, 1, 1];
  /** AR(1) coefficient of the noise (0: independent readings), kept at unit variance. */
  phi = 0;
  private readonly noise = [0, 0, 0];
  private readonly values = new Float32Array(3);
  private readonly rng: SeededRandom;
  ts = 0;

  constructor(
    readonly streamId: string,
    seed: number,
  ) {
    this.rng = new SeededRandom(seed);
    for (let c = 0; c < 3; c++) this.noise[c] = this.rng.normal();
  }

  next(): Reading {
    const innovation = Math.sqrt(1 - this.phi * this.phi);
    for (let c = 0; c < 3; c++) {
      const e = this.phi * (this.noise[c] as number) + innovation * this.rng.normal();
      this.noise[c] = e;
      this.values[c] = (STATS.mean[c] as number) + (STATS.std[c] as number) * ((this.shift[c] as number) + (this.scale[c] as number) * e);
    }
    this.ts += 1000;
    return { streamId: this.streamId, ts: this.ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values: this.values };
  }
}

/**
 * Readings after a step change until the noise-free measure reaches `threshold`: the exponential
 * averages (weight a = 2 / (horizon + 1)) give weight w = 1 - (1 - a)^j to the new regime after j
 * readings, so mean(z) = w·k, mean(z²) = (1 - w) + w·(s² + k²), and the drift is the distance
 * sqrt(mean² + (std - 1)²) of that mixture.
 */
function predictedDelay(k: number, s: number, threshold: number, horizon: number): number {
  const a = 2 / (horizon + 1);
  for (let j = 1; j < 1_000_000; j++) {
    const w = 1 - (1 - a) ** j;
    const m = w * k;
    const std = Math.sqrt((1 - w) + w * (s * s + k * k) - m * m);
    if (Math.hypot(m, std - 1) >= threshold) return j;
  }
  throw new Error('never reached');
}

interface Run {
  changes: Array<BandChange & { at: number }>;
}

/** Feeds the next `count` readings of `gen` into slot `slot`. */
function feed(tracker: DriftTracker, slot: number, gen: Generator, count: number): void {
  for (let i = 0; i < count; i++) tracker.recordAccepted(slot, gen.next());
}

/** A tracker whose band changes land in `run.changes`, with the reading index (ts is 1000 × index). */
function tracked(config: DriftConfig, stats: ChannelStats | null = STATS, maxStreams = 256): { tracker: DriftTracker; run: Run } {
  const run: Run = { changes: [] };
  const tracker = new DriftTracker({
    maxStreams,
    channels: CHANNELS,
    stats,
    config,
    onBandChange: (change) => run.changes.push({ ...change, at: change.ts / 1000 }),
  });
  return { tracker, run };
}

/** For each of `streams` streams: warm up, change at a known reading, return the delays to each band. */
function stepChange(
  streams: number,
  change: (gen: Generator) => void,
  bands: Array<'moderate' | 'severe'>,
  config = defaults(),
): { delays: Record<string, number[]>; changes: BandChange[] } {
  const { tracker, run } = tracked(config);
  const warm = 2000;
  const delays: Record<string, number[]> = Object.fromEntries(bands.map((b) => [b, []]));
  for (let s = 0; s < streams; s++) {
    const gen = new Generator(`pump-${s}`, 1000 + s);
    feed(tracker, s, gen, warm);
    expect(tracker.stream(gen.streamId)?.band).toBe('ok');
    change(gen);
    feed(tracker, s, gen, 3 * config.horizon);
    for (const band of bands) {
      const hit = run.changes.find((c) => c.streamId === gen.streamId && c.measure === 'drift' && c.to === band);
      expect(hit, `${gen.streamId} reaches ${band}`).toBeDefined();
      delays[band]?.push((hit as { at: number }).at - warm);
    }
  }
  return { delays, changes: run.changes };
}

const summary = (xs: number[]): { min: number; mean: number; max: number } => ({
  min: Math.min(...xs),
  mean: Math.round(xs.reduce((a, b) => a + b, 0) / xs.length),
  max: Math.max(...xs),
});

/** Every delay within 15 % (+ 10 readings of noise) of the horizon math. */
function expectDelays(delays: number[], predicted: number): void {
  for (const d of delays) expect(Math.abs(d - predicted)).toBeLessThanOrEqual(0.15 * predicted + 10);
}

describe('drift tracker: detection on generated data with known drift', () => {
  const horizon = 500;

  it('a 2σ mean shift is moderate within the predicted number of readings, and never severe', () => {
    const { delays, changes } = stepChange(20, (g) => (g.shift[1] = 2), ['moderate']);
    const predicted = predictedDelay(2, 1, 1, horizon);
    expect(predicted).toBeGreaterThan(140);
    expect(predicted).toBeLessThan(160);
    expectDelays(delays.moderate as number[], predicted);
    expect(changes.some((c) => c.to === 'severe')).toBe(false);
    const last = changes.at(-1) as BandChange;
    expect(last.channel).toBe('current');
    console.log(`2σ shift → moderate: predicted ${predicted}, observed ${JSON.stringify(summary(delays.moderate as number[]))} readings`);
  });

  it('a -5σ mean shift passes moderate, then severe, each at its predicted delay; the shift is signed', () => {
    const { delays, changes } = stepChange(20, (g) => (g.shift[2] = -5), ['moderate', 'severe']);
    const pModerate = predictedDelay(-5, 1, 1, horizon);
    const pSevere = predictedDelay(-5, 1, 3, horizon);
    expectDelays(delays.moderate as number[], pModerate);
    expectDelays(delays.severe as number[], pSevere);
    const severe = changes.find((c) => c.to === 'severe') as BandChange;
    expect(severe.from).toBe('moderate');
    expect(severe.channel).toBe('pressure');
    expect(severe.shift as number).toBeLessThan(-2);
    console.log(
      `-5σ shift → moderate: predicted ${pModerate}, observed ${JSON.stringify(summary(delays.moderate as number[]))}; ` +
        `→ severe: predicted ${pSevere}, observed ${JSON.stringify(summary(delays.severe as number[]))} readings`,
    );
  });

  it('a variance-only change (std ×3, mean unchanged) is moderate at its predicted delay, and never severe', () => {
    const { delays, changes } = stepChange(20, (g) => (g.scale[0] = 3), ['moderate']);
    const predicted = predictedDelay(0, 3, 1, horizon);
    // The spread is estimated from squares, which are noisier than the mean (z² of N(0, 9) has std 12.7):
    // the mean delay follows the horizon math, single streams scatter by about a third.
    const moderate = delays.moderate as number[];
    expect(Math.abs(summary(moderate).mean - predicted)).toBeLessThanOrEqual(0.15 * predicted);
    for (const d of moderate) expect(d).toBeLessThanOrEqual(1.6 * predicted);
    expect(changes.some((c) => c.to === 'severe')).toBe(false);
    const first = changes.find((c) => c.to === 'moderate') as BandChange;
    expect(Math.abs(first.shift as number)).toBeLessThan(0.3);
    expect(first.stdRatio as number).toBeGreaterThan(1.8);
    console.log(`std ×3 → moderate: predicted ${predicted}, observed ${JSON.stringify(summary(moderate))} readings`);
  });

  it('a stream that starts drifted is given its band when warm-up ends (warming → severe is an event)', () => {
    const { tracker, run } = tracked(defaults());
    const gen = new Generator('offset', 7);
    gen.shift[0] = 4;
    feed(tracker, 0, gen, 249);
    expect(tracker.stream('offset')?.band).toBe('warming');
    expect(run.changes).toEqual([]);
    feed(tracker, 0, gen, 1);
    expect(run.changes.map((c) => [c.measure, c.from, c.to, c.at])).toEqual([['drift', 'warming', 'severe', 250]]);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 0, moderate: 0, severe: 1 });
  });

  it('stationary streams never leave ok: 10 streams × 100k readings of Gaussian noise, and 100k of AR(1) φ = 0.9', () => {
    const { tracker, run } = tracked(defaults());
    let maxDrift = 0;
    let readings = 0;
    const probe = (id: string): void => {
      maxDrift = Math.max(maxDrift, tracker.stream(id)?.drift ?? 0);
    };
    for (let s = 0; s < 11; s++) {
      const gen = new Generator(`still-${s}`, 500 + s);
      if (s === 10) gen.phi = 0.9;
      for (let i = 0; i < 100_000; i++) {
        tracker.recordAccepted(s, gen.next());
        if (i % 50 === 49) probe(gen.streamId);
      }
      readings += 100_000;
      if (s === 9) {
        console.log(`stationary Gaussian: ${readings} readings, ${run.changes.length} band changes, max drift ${maxDrift.toFixed(3)}`);
        expect(maxDrift).toBeLessThan(0.35);
        maxDrift = 0;
      }
    }
    console.log(`stationary AR(1) φ=0.9: 100000 readings, max drift ${maxDrift.toFixed(3)}`);
    expect(run.changes).toEqual([]);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 11, moderate: 0, severe: 0 });
    expect(tracker.qualityCounts()).toEqual({ warming: 0, ok: 11, poor: 0 });
  });

  it('one broken reading (1e30) moves drift by at most clip² / horizon; without the clip it would be severe', () => {
    for (const [clip, band] of [[8, 'ok'], [1e12, 'severe']] as const) {
      const { tracker, run } = tracked(defaults({ clip }));
      const gen = new Generator('adc', 3);
      feed(tracker, 0, gen, 2000);
      const r = gen.next();
      (r.values as Float32Array)[0] = 1e30;
      tracker.recordAccepted(0, r);
      expect(tracker.stream('adc')?.band).toBe(band);
      expect(run.changes.map((c) => c.to)).toEqual(band === 'ok' ? [] : ['severe']);
      if (clip === 8) expect(tracker.stream('adc')?.drift as number).toBeLessThan(0.3);
    }
  });
});

describe('drift tracker: hysteresis', () => {
  it('a stream sitting on the moderate boundary does not flap (and does without hysteresis)', () => {
    const flips: Record<string, number> = {};
    for (const hysteresis of [0.2, 0]) {
      const { tracker, run } = tracked(defaults({ hysteresis }));
      const gen = new Generator('edge', 11);
      gen.shift[1] = 1;
      feed(tracker, 0, gen, 50_000);
      flips[hysteresis] = run.changes.filter((c) => c.measure === 'drift').length;
    }
    console.log(`1σ shift held for 50k readings: ${flips[0.2]} band changes with hysteresis 0.2, ${flips[0]} without`);
    expect(flips[0.2]).toBeLessThanOrEqual(1);
    expect(flips[0]).toBeGreaterThan(10);
  });

  it('goes back down only below (1 - hysteresis) × threshold, one band at a time or straight to ok', () => {
    const { tracker, run } = tracked(defaults());
    const gen = new Generator('back', 5);
    feed(tracker, 0, gen, 1000);
    gen.shift[0] = 6;
    feed(tracker, 0, gen, 3000);
    gen.shift[0] = 0;
    feed(tracker, 0, gen, 3000);
    const drift = run.changes.filter((c) => c.measure === 'drift');
    expect(drift.map((c) => `${c.from}→${c.to}`)).toEqual(['ok→moderate', 'moderate→severe', 'severe→moderate', 'moderate→ok']);
    expect(drift[2]?.drift as number).toBeLessThan(2.4);
    expect(drift[2]?.drift as number).toBeGreaterThan(2.3);
    expect(drift[3]?.drift as number).toBeLessThan(0.8);
    expect(drift[3]?.drift as number).toBeGreaterThan(0.7);
  });
});

describe('drift tracker: input quality', () => {
  it('tracks the shares of rejected and non-finite readings; poor above 5 %, ok again below 4 % at the predicted delay', () => {
    const { tracker, run } = tracked(defaults());
    const gen = new Generator('flaky', 9);
    const rng = new SeededRandom(99);
    for (let i = 0; i < 5000; i++) {
      const u = rng.uniform();
      // 10 % rejected: half out_of_order, half non_finite.
      if (u < 0.05) tracker.recordRejected('flaky', 'out_of_order', gen.next().ts);
      else if (u < 0.1) tracker.recordRejected('flaky', 'non_finite', gen.next().ts);
      else tracker.recordAccepted(0, gen.next());
    }
    const s = tracker.stream('flaky');
    expect(s?.quality).toBe('poor');
    expect(s?.rejectedShare as number).toBeGreaterThan(0.06);
    expect(s?.rejectedShare as number).toBeLessThan(0.14);
    expect(s?.nonFiniteShare as number).toBeGreaterThan(0.02);
    expect(s?.nonFiniteShare as number).toBeLessThan(0.08);
    expect(s?.band).toBe('ok');
    expect(tracker.qualityCounts()).toEqual({ warming: 0, ok: 0, poor: 1 });
    const share = tracker.stream('flaky')?.rejectedShare as number;
    const cleanFrom = gen.ts / 1000;
    feed(tracker, 0, gen, 2000);
    const recovered = run.changes.find((c) => c.measure === 'quality' && c.to === 'ok') as BandChange & { at: number };
    // The share decays by (1 - a) per clean reading: below 0.04 after ln(0.04 / share) / ln(1 - a).
    const predicted = Math.log(0.04 / share) / Math.log(1 - 2 / 501);
    expect(Math.abs(recovered.at - cleanFrom - predicted)).toBeLessThanOrEqual(2);
    expect(run.changes.filter((c) => c.measure === 'quality').map((c) => `${c.from}→${c.to}`)).toEqual(['warming→poor', 'poor→ok']);
  });

  it('a NaN or infinite value in an accepted reading counts as non-finite and leaves the averages alone', () => {
    const { tracker, run } = tracked(defaults());
    const gen = new Generator('nan', 4);
    for (let i = 0; i < 3000; i++) {
      const r = gen.next();
      if (i % 5 === 0) (r.values as Float32Array)[i % 3] = i % 10 === 0 ? Number.NaN : Number.POSITIVE_INFINITY;
      tracker.recordAccepted(0, r);
    }
    const s = tracker.stream('nan');
    expect(s?.band).toBe('ok');
    expect(s?.drift as number).toBeLessThan(0.3);
    expect(s?.nonFiniteShare as number).toBeGreaterThan(0.15);
    expect(s?.rejectedShare).toBe(s?.nonFiniteShare);
    expect(s?.quality).toBe('poor');
    expect(run.changes.filter((c) => c.measure === 'drift')).toEqual([]);
  });

  it('does not count rejections of a stream it does not hold', () => {
    const { tracker } = tracked(defaults());
    expect(tracker.recordRejected('nobody', 'stream_limit')).toBe(false);
    expect(tracker.size).toBe(0);
  });

  it('rejections without a record time are reported at the wall clock', () => {
    const { tracker, run } = tracked(defaults({ minReadings: 1 }));
    tracker.recordAccepted(0, new Generator('w', 1).next());
    const before = Date.now();
    tracker.recordRejected('w', 'malformed');
    expect(run.changes.at(-1)?.measure).toBe('quality');
    expect(run.changes.at(-1)?.ts as number).toBeGreaterThanOrEqual(before);
  });
});

describe('drift tracker: slots', () => {
  it('resets a slot on reuse by another stream, on reset(slot) and on forget(id); counts follow', () => {
    const { tracker, run } = tracked(defaults());
    const a = new Generator('a', 1);
    a.shift[0] = 5;
    feed(tracker, 3, a, 1000);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 0, moderate: 0, severe: 1 });
    const b = new Generator('b', 2);
    feed(tracker, 3, b, 10);
    expect(tracker.stream('a')).toBeUndefined();
    expect(tracker.recordRejected('a', 'duplicate')).toBe(false);
    expect(tracker.stream('b')).toMatchObject({ band: 'warming', quality: 'warming', drift: null, channel: null, rejectedShare: 0 });
    expect(tracker.bandCounts()).toEqual({ warming: 1, ok: 0, moderate: 0, severe: 0 });
    const events = run.changes.length;
    feed(tracker, 3, b, 1000);
    expect(run.changes.length).toBe(events);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 1, moderate: 0, severe: 0 });
    // The same stream given another slot (the store evicted and re-admitted it) is tracked once.
    feed(tracker, 7, b, 10);
    expect(tracker.size).toBe(1);
    expect(tracker.stream('b')?.band).toBe('warming');
    tracker.reset(7);
    tracker.reset(7);
    expect(tracker.size).toBe(0);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 0, moderate: 0, severe: 0 });
    expect(tracker.qualityCounts()).toEqual({ warming: 0, ok: 0, poor: 0 });
    feed(tracker, 0, a, 10);
    expect(tracker.forget('a')).toBe(true);
    expect(tracker.forget('a')).toBe(false);
    expect(tracker.size).toBe(0);
  });

  it('record(): slots of its own by stream id, grown on demand up to maxStreams, freed by forget()', () => {
    const maxStreams = 600;
    const tracker = new DriftTracker({ maxStreams, channels: CHANNELS, stats: STATS, config: defaults() });
    expect(tracker.capacity).toBe(256);
    const streams = Array.from({ length: 700 }, (_, i) => new Generator(`s${i}`, 100 + i));
    for (const g of streams) tracker.record(g.next());
    // 600 tracked, the arrays grew to hold them and no further; the 100 beyond maxStreams are not tracked.
    expect(tracker.size).toBe(maxStreams);
    expect(tracker.capacity).toBe(maxStreams);
    expect(tracker.stream('s599')).toBeDefined();
    expect(tracker.stream('s600')).toBeUndefined();
    // State survives growth: a stream fed past warm-up before the arrays grew keeps its band.
    const early = new DriftTracker({ maxStreams, channels: CHANNELS, stats: STATS, config: defaults() });
    const shifted = new Generator('shifted', 1);
    shifted.shift[2] = 5;
    for (let i = 0; i < 1000; i++) early.record(shifted.next());
    for (const g of streams.slice(0, 400)) early.record(g.next());
    expect(early.capacity).toBe(512);
    expect(early.stream('shifted')).toMatchObject({ band: 'severe', channel: 'pressure' });
    // forget() frees the slot for the next new stream.
    expect(tracker.forget('s10')).toBe(true);
    tracker.record(streams[650]!.next());
    expect(tracker.stream('s650')).toBeDefined();
    expect(tracker.size).toBe(maxStreams);
  });

  it('takes single-channel readings channel by channel and names the channel that drifts', () => {
    const { tracker, run } = tracked(defaults());
    const gen = new Generator('points', 8);
    const point = (r: Reading, channel: number): Reading => ({ ...r, channel, value: (r.values as Float32Array)[channel] as number, values: null });
    for (let i = 0; i < 3000; i++) {
      if (i === 1000) gen.shift[1] = 3.5;
      const r = gen.next();
      for (let c = 0; c < 3; c++) tracker.recordAccepted(0, point(r, c));
    }
    const moderate = run.changes.find((c) => c.to === 'moderate') as BandChange & { at: number };
    expect(moderate.channel).toBe('current');
    expectDelays([moderate.at - 1000], predictedDelay(3.5, 1, 1, 500));
    expect(tracker.stream('points')?.band).toBe('severe');
  });
});

describe('drift tracker: outputs', () => {
  it('top(n) is bounded, ordered by drift, then by rejected share, and leaves out streams with neither', () => {
    const { tracker } = tracked(defaults(), STATS, 400);
    for (let s = 0; s < 200; s++) {
      const gen = new Generator(`s${s}`, s);
      gen.shift[s % 3] = (s * 4) / 200;
      feed(tracker, s, gen, 1000);
    }
    const warmingWithRejects = new Generator('w-rej', 1);
    feed(tracker, 300, warmingWithRejects, 10);
    tracker.recordRejected('w-rej', 'duplicate');
    feed(tracker, 301, new Generator('w-clean', 2), 10);

    const top5 = tracker.top(5);
    const all = [...Array(200).keys()].map((s) => tracker.stream(`s${s}`) as DriftSummary).sort((a, b) => (b.drift as number) - (a.drift as number));
    expect(top5).toEqual(all.slice(0, 5));
    for (const t of top5) expect(Number(t.streamId.slice(1))).toBeGreaterThanOrEqual(190);
    expect(top5[0]).toMatchObject({ band: 'severe', channel: 'current', quality: 'ok', rejectedShare: 0 });
    expect(tracker.top(1000)).toHaveLength(TOP_MAX);
    expect(tracker.top(0)).toEqual([]);
    expect(tracker.top()).toHaveLength(5);

    const { tracker: small } = tracked(defaults());
    feed(small, 0, new Generator('x', 1), 1000);
    feed(small, 1, warmingWithRejects, 10);
    small.recordRejected('w-rej', 'duplicate');
    feed(small, 2, new Generator('w-clean', 2), 10);
    expect(small.top(10).map((t) => t.streamId)).toEqual(['x', 'w-rej']);
  });

  it('with no training statistics: no drift and no drift band, quality still tracked', () => {
    const { tracker, run } = tracked(defaults(), null);
    const gen = new Generator('bare', 1);
    gen.shift[0] = 10;
    for (let i = 0; i < 1000; i++) {
      if (i % 4 === 0) tracker.recordRejected('bare', 'invalid_payload');
      else tracker.recordAccepted(0, gen.next());
    }
    expect(tracker.hasReference).toBe(false);
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 0, moderate: 0, severe: 0 });
    expect(tracker.qualityCounts()).toEqual({ warming: 0, ok: 0, poor: 1 });
    expect(tracker.stream('bare')).toMatchObject({ band: 'warming', drift: null, channel: null, quality: 'poor' });
    expect(run.changes.map((c) => c.measure)).toEqual(['quality']);
    expect(tracker.top(3).map((t) => t.streamId)).toEqual(['bare']);
  });

  it('maps training statistics by channel name and refuses a channel without them', () => {
    const reordered: ChannelStats = { channels: ['pressure', 'vibration', 'current'], mean: [100, 10, -5], std: [20, 2, 0.5] };
    const { tracker, run } = tracked(defaults(), reordered);
    feed(tracker, 0, new Generator('r', 1), 2000);
    expect(tracker.stream('r')?.band).toBe('ok');
    expect(run.changes).toEqual([]);
    const base = { maxStreams: 4, channels: CHANNELS, config: defaults() };
    expect(() => new DriftTracker({ ...base, stats: { channels: ['vibration', 'current'], mean: [0, 0], std: [1, 1] } })).toThrow(/"pressure" has no mean and std — fix:/);
    expect(() => new DriftTracker({ ...base, stats: { ...STATS, std: [1, 0, 1] } })).toThrow(/"current" has mean -5, std 0 — fix:/);
    expect(() => new DriftTracker({ ...base, maxStreams: 0, stats: null })).toThrow(/maxStreams/);
  });
});

describe('drift tracker: each stream against its own first readings (models with per-stream baselines)', () => {
  /** A stream at its own operating point: `base` ± 1 on every channel, with a ramp of `slope` per reading on channel 0 from `from` on. */
  function operatingPoint(streamId: string, seed: number, base: number): { next(ramp?: number): Reading } {
    const rng = new SeededRandom(seed);
    const values = new Float32Array(3);
    let ts = 0;
    return {
      next(ramp = 0) {
        for (let c = 0; c < 3; c++) values[c] = base + (c === 0 ? ramp : 0) + rng.normal();
        ts += 1000;
        return { streamId, ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values };
      },
    };
  }

  const ownReference = (minScale = [0.1, 0.1, 0.1]) => {
    const run: Run = { changes: [] };
    const tracker = new DriftTracker({
      maxStreams: 64,
      channels: CHANNELS,
      // Training statistics from one operating point are ignored: every stream has its own.
      stats: STATS,
      streamReference: { readings: 100, minScale },
      config: defaults({ horizon: 200 }),
      onBandChange: (change) => run.changes.push({ ...change, at: change.ts / 1000 }),
    });
    return { tracker, run };
  };

  it('50 streams at 50 operating points stay ok (against one operating point\'s training statistics, 47 would be severe)', () => {
    const { tracker, run } = ownReference();
    const { tracker: shared } = tracked(defaults({ horizon: 200 }), { channels: CHANNELS, mean: [20, 20, 20], std: [1, 1, 1] });
    for (let s = 0; s < 50; s++) {
      const own = operatingPoint(`pump-${s}`, 500 + s, 20 + s);
      const other = operatingPoint(`pump-${s}`, 500 + s, 20 + s);
      for (let i = 0; i < 3_000; i++) {
        tracker.record(own.next());
        shared.record(other.next());
      }
    }
    expect(tracker.bandCounts()).toEqual({ warming: 0, ok: 50, moderate: 0, severe: 0 });
    expect(run.changes.filter((c) => c.measure === 'drift')).toEqual([]);
    // Base 20 is the training point; 21 and 22 are 1σ and 2σ away (moderate), 23 and up at least 3σ.
    expect(shared.bandCounts()).toEqual({ warming: 0, ok: 1, moderate: 2, severe: 47 });
  });

  it('reports a slow drift of one channel (+6σ over 6,000 readings) as moderate, then severe, naming the channel; the quiet stream stays ok', () => {
    const { tracker, run } = ownReference();
    const drifting = operatingPoint('pump-a', 1, 42);
    const quiet = operatingPoint('pump-b', 2, 42);
    const warm = 1_000;
    for (let i = 0; i < warm + 6_000; i++) {
      const ramp = i < warm ? 0 : ((i - warm) / 6_000) * 6;
      tracker.record(drifting.next(ramp));
      tracker.record(quiet.next());
    }
    const events = run.changes.filter((c) => c.measure === 'drift');
    expect(events.map((e) => [e.streamId, e.from, e.to, e.channel])).toEqual([
      ['pump-a', 'ok', 'moderate', 'vibration'],
      ['pump-a', 'moderate', 'severe', 'vibration'],
    ]);
    // A ramp of 1σ per 1,000 readings, seen through a 200-reading average that lags ~100 readings behind it.
    const [moderate, severe] = events.map((e) => e.at - warm) as [number, number];
    expect(moderate).toBeGreaterThan(900);
    expect(moderate).toBeLessThan(1_500);
    expect(severe).toBeGreaterThan(2_900);
    expect(severe).toBeLessThan(3_500);
    expect((events[1] as BandChange).shift).toBeGreaterThan(2.5);
    expect(tracker.stream('pump-b')?.band).toBe('ok');
    console.log(`slow drift (1σ per 1,000 readings) → moderate after ${moderate}, severe after ${severe} readings`);
  });

  it('the reference is the stream\'s first readings, its std floored by minScale; a reused slot learns it again', () => {
    const { tracker } = ownReference([5, 5, 5]);
    // Floored: a stream at 42 ± 1 with a scale floor of 5 sees a +6 step as 1.2 "σ", not 6.
    const a = operatingPoint('pump-a', 3, 42);
    for (let i = 0; i < 1_000; i++) tracker.record(a.next());
    for (let i = 0; i < 1_000; i++) tracker.record(a.next(6));
    const summary = tracker.stream('pump-a') as DriftSummary;
    expect(summary.band).toBe('moderate');
    expect(summary.shift).toBeGreaterThan(1.1);
    expect(summary.shift).toBeLessThan(1.3);
    // Forgotten, then back at another operating point: it starts over from its new first readings.
    tracker.forget('pump-a');
    const again = operatingPoint('pump-a', 4, 90);
    for (let i = 0; i < 1_000; i++) tracker.record(again.next());
    expect(tracker.stream('pump-a')?.band).toBe('ok');
  });

  it('refuses a reference of fewer than 2 readings or a minScale that does not fit the channels', () => {
    const make = (readings: number, minScale: number[]) => () =>
      new DriftTracker({ maxStreams: 4, channels: CHANNELS, stats: null, streamReference: { readings, minScale }, config: defaults() });
    expect(make(1, [1, 1, 1])).toThrow(/at least 2/);
    expect(make(100, [1, 1])).toThrow(/one finite value > 0 per channel/);
    expect(make(100, [1, 0, 1])).toThrow(/one finite value > 0 per channel/);
  });
});
