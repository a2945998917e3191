/**
 * The window store against a plain model: per stream, an array of the rows since its window (re)started.
 * Random runs of pushes (rows and single-channel readings; in order, duplicate, out of order, from the
 * future, stamped with receive time) and sweeps at advancing times, with a small maxStreams, must give
 * the same outcomes, windows, stale and evicted streams and counts from both. maxBytes is left unset
 * (unbounded), so the byte budget is not part of the model; the byte tests in window.test.ts cover it.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import { WindowStore, type StreamSlot } from '../../src/window/window-store.js';

/** The wall clock, frozen: rows stamped more than `tol` past it are from the future. */
const NOW = Date.parse('2026-06-01T00:00:00Z');
const IDS = ['a', 'b', 'c', 'd', 'e'];

interface Config {
  window: number;
  channels: number;
  maxStreams: number;
  staleAfterMs: number;
  idleTtlMs: number;
  tol: number;
  /** Integer means and power-of-two stds, so (v - mean) / std is exact in float32 too. */
  zscore: { mean: number[]; std: number[] } | null;
}

/** How a push's payload ts relates to the last one generated for its stream. */
type TsMode = 'next' | 'same' | 'older' | 'future' | 'edge' | 'back' | 'receive';
type Op =
  | { kind: 'row'; stream: number; mode: TsMode; d: number; dt: number; values: number[] }
  | { kind: 'point'; stream: number; mode: TsMode; d: number; dt: number; channel: number; value: number }
  | { kind: 'sweep'; dt: number };

type Outcome = 'filling' | 'ready' | 'out_of_order' | 'duplicate' | 'stream_limit';

interface ModelStream {
  /** Rows since the window (re)started, oldest first, at most `window` of them. */
  rows: number[][];
  lastTs: number;
  lastReceivedAt: number;
  lastSeen: number;
  stale: boolean;
  /** The row being assembled from single-channel readings: channel → value and ts. */
  pending: Map<number, { value: number; ts: number }>;
}

class WindowModel {
  /** In the order streams joined the table (a stream that left and came back joins again). */
  readonly streams = new Map<string, ModelStream>();
  /** The stale streams of the last sweep, longest silent first: the ones a new stream may replace. */
  private staleQueue: string[] = [];
  readonly evictedForRoom: string[] = [];
  gapsClosed = 0;
  clockSteps = 0;

  constructor(private readonly cfg: Config) {}

  push(r: Reading, now: number): Outcome {
    let s = this.streams.get(r.streamId);
    if (s === undefined) {
      while (this.streams.size >= this.cfg.maxStreams) {
        const id = this.staleQueue.shift();
        if (id === undefined) return 'stream_limit';
        if (this.streams.get(id)?.stale === true) {
          this.streams.delete(id);
          this.evictedForRoom.push(id);
        }
      }
      s = { rows: [], lastTs: -Infinity, lastReceivedAt: 0, lastSeen: now, stale: false, pending: new Map() };
      this.streams.set(r.streamId, s);
    }
    // Any reading ends a gap and counts as seen, even one then rejected for order.
    if (s.stale) {
      s.stale = false;
      s.rows = [];
      s.pending.clear();
      this.gapsClosed++;
    }
    s.lastSeen = now;
    if (r.tsFromPayload && r.ts <= s.lastTs) {
      if (s.lastTs <= NOW + this.cfg.tol) return r.ts === s.lastTs ? 'duplicate' : 'out_of_order';
      // The newest row is from beyond the tolerance: the window starts again from this reading.
      s.rows = [];
      s.lastTs = -Infinity;
      s.pending.clear();
      this.clockSteps++;
    }
    if (r.values !== null) return this.commit(s, Array.from(r.values), r.ts, r.receivedAt);
    if (this.cfg.channels === 1) return this.commit(s, [r.value], r.ts, r.receivedAt);
    let outcome: Outcome = 'filling';
    const held = s.pending.get(r.channel);
    if (held !== undefined) {
      if (r.tsFromPayload && held.ts === r.ts) return 'duplicate';
      // A channel repeats: the row so far is committed with the missing channels carried from the
      // newest row, or dropped when there is no row yet.
      const prev = s.rows.at(-1);
      if (prev !== undefined) {
        const carried = prev.map((v, c) => s.pending.get(c)?.value ?? v);
        outcome = this.commit(s, carried, Math.max(...[...s.pending.values()].map((p) => p.ts)), r.receivedAt);
      }
      s.pending.clear();
    }
    s.pending.set(r.channel, { value: r.value, ts: r.ts });
    if (s.pending.size === this.cfg.channels) {
      const full = [...Array(this.cfg.channels).keys()].map((c) => s.pending.get(c)!.value);
      outcome = this.commit(s, full, Math.max(...[...s.pending.values()].map((p) => p.ts)), r.receivedAt);
      s.pending.clear();
    }
    return outcome;
  }

  private commit(s: ModelStream, row: number[], ts: number, receivedAt: number): Outcome {
    s.rows.push(row);
    if (s.rows.length > this.cfg.window) s.rows.shift();
    if (ts > s.lastTs) s.lastTs = ts;
    s.lastReceivedAt = receivedAt;
    return s.rows.length === this.cfg.window ? 'ready' : 'filling';
  }

  sweep(now: number): { becameStale: string[]; evicted: string[] } {
    const becameStale: string[] = [];
    const evicted: string[] = [];
    for (const [id, s] of this.streams) {
      const silent = now - s.lastSeen;
      if (silent >= this.cfg.idleTtlMs) {
        this.streams.delete(id);
        evicted.push(id);
      } else if (!s.stale && silent >= this.cfg.staleAfterMs) {
        s.stale = true;
        becameStale.push(id);
      }
    }
    this.staleQueue = [...this.streams]
      .filter(([, s]) => s.stale)
      .sort(([, x], [, y]) => x.lastSeen - y.lastSeen)
      .map(([id]) => id);
    return { becameStale, evicted };
  }

  /** The window the store hands out for scoring, oldest row first, normalised as configured. */
  window(s: ModelStream): number[] {
    const z = this.cfg.zscore;
    return s.rows.flatMap((row) => row.map((v, c) => (z === null ? v : (v - z.mean[c]!) / z.std[c]!)));
  }
}

const configArb: fc.Arbitrary<Config> = fc
  .record({
    window: fc.integer({ min: 1, max: 4 }),
    channels: fc.integer({ min: 1, max: 3 }),
    maxStreams: fc.integer({ min: 2, max: 4 }),
    staleAfterMs: fc.integer({ min: 20, max: 150 }),
    idleExtraMs: fc.integer({ min: 0, max: 300 }),
    tol: fc.integer({ min: 0, max: 2000 }),
    zscore: fc.option(
      fc.record({
        mean: fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 3, maxLength: 3 }),
        std: fc.array(fc.constantFrom(0.5, 1, 2, 4), { minLength: 3, maxLength: 3 }),
      }),
    ),
  })
  .map(({ idleExtraMs, zscore, ...c }) => ({
    ...c,
    idleTtlMs: c.staleAfterMs + idleExtraMs,
    zscore: zscore === null ? null : { mean: zscore.mean.slice(0, c.channels), std: zscore.std.slice(0, c.channels) },
  }));

function opArb(cfg: Config): fc.Arbitrary<Op> {
  const stream = fc.integer({ min: 0, max: IDS.length - 1 });
  const mode = fc.constantFrom<TsMode>('next', 'next', 'next', 'same', 'older', 'future', 'edge', 'back', 'receive');
  const d = fc.integer({ min: 1, max: 3 });
  const dt = fc.integer({ min: 1, max: 40 });
  const value = fc.integer({ min: -100, max: 100 });
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('row' as const), stream, mode, d, dt, values: fc.array(value, { minLength: cfg.channels, maxLength: cfg.channels }) }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('point' as const), stream, mode, d, dt, channel: fc.integer({ min: 0, max: cfg.channels - 1 }), value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const), dt: fc.integer({ min: 1, max: 400 }) }) },
  );
}

function copyOf(store: WindowStore, slot: StreamSlot, cfg: Config): number[] {
  const out = new Float32Array(cfg.window * cfg.channels + 2);
  store.copyWindow(slot, out, 1);
  return Array.from(out.subarray(1, 1 + cfg.window * cfg.channels));
}

function run(cfg: Config, ops: Op[]): void {
  const evictedForRoom: string[] = [];
  const store = new WindowStore({
    window: cfg.window,
    channels: cfg.channels,
    maxStreams: cfg.maxStreams,
    staleAfterMs: cfg.staleAfterMs,
    idleTtlMs: cfg.idleTtlMs,
    futureRowToleranceMs: cfg.tol,
    normalization: cfg.zscore === null ? { kind: 'graph' } : { kind: 'zscore', ...cfg.zscore },
    onEvicted: (id) => evictedForRoom.push(id),
  });
  const model = new WindowModel(cfg);
  /** The slot the store last handed out for each stream's full window. */
  const slots = new Map<string, StreamSlot>();
  const lastGenerated = IDS.map(() => NOW - 1000);
  let now = 0;

  ops.forEach((op, step) => {
    now += op.dt;
    const got: unknown[] = [];
    const want: unknown[] = [];
    if (op.kind === 'sweep') {
      // Which streams, not in what order: the order of a sweep's lists is not part of the contract.
      const g = store.sweep(now);
      const w = model.sweep(now);
      got.push([...g.becameStale].sort(), [...g.evicted].sort());
      want.push([...w.becameStale].sort(), [...w.evicted].sort());
    } else {
      const id = IDS[op.stream]!;
      const prev = lastGenerated[op.stream]!;
      const ts = {
        next: prev + op.d,
        same: prev,
        older: prev - op.d,
        future: NOW + cfg.tol + op.d,
        edge: NOW + cfg.tol,
        back: NOW - 1000 + op.d,
        receive: prev - op.d,
      }[op.mode];
      if (op.mode !== 'receive') lastGenerated[op.stream] = ts;
      const reading: Reading =
        op.kind === 'row'
          ? { streamId: id, ts, tsFromPayload: op.mode !== 'receive', receivedAt: now, channel: -1, value: 0, values: Float32Array.from(op.values) }
          : { streamId: id, ts, tsFromPayload: op.mode !== 'receive', receivedAt: now, channel: op.channel, value: op.value, values: null };
      const outcome = store.push(reading, now);
      const expected = model.push(reading, now);
      if (typeof outcome === 'number') {
        slots.set(id, outcome);
        got.push('ready', store.streamId(outcome), copyOf(store, outcome, cfg), store.lastTs(outcome), store.lastReceivedAt(outcome));
      } else {
        got.push(outcome);
      }
      if (expected === 'ready') {
        const s = model.streams.get(id)!;
        want.push('ready', id, model.window(s), s.lastTs, s.lastReceivedAt);
      } else {
        want.push(expected);
      }
    }
    got.push({ evictedForRoom: [...evictedForRoom], counted: store.evictedForRoom, size: store.size, staleCount: store.staleCount, gapsClosed: store.gapsClosed, clockSteps: store.clockSteps });
    want.push({
      evictedForRoom: model.evictedForRoom,
      counted: model.evictedForRoom.length,
      size: model.streams.size,
      staleCount: [...model.streams.values()].filter((s) => s.stale).length,
      gapsClosed: model.gapsClosed,
      clockSteps: model.clockSteps,
    });
    got.push(IDS.map((id) => store.lastTsOf(id)));
    want.push(IDS.map((id) => model.streams.get(id)?.lastTs));
    // Every full window still holds its own rows, whatever happened to the other streams since.
    for (const [id, s] of model.streams) {
      if (s.rows.length < cfg.window) continue;
      const slot = slots.get(id)!;
      got.push([id, store.streamId(slot), copyOf(store, slot, cfg)]);
      want.push([id, id, model.window(s)]);
    }
    // One cheap comparison per step; expect() only to report a difference.
    if (!sameValues(got, want)) expect(got, `step ${step}: ${JSON.stringify(op)}`).toEqual(want);
  });
}

/** Deep equality of arrays, plain objects and primitives (NaN equals NaN; undefined, null and ±Infinity stay apart). */
function sameValues(a: unknown, b: unknown): boolean {
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValues(x, b[i]));
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    return ka.length === Object.keys(b).length && ka.every((k) => sameValues(ra[k], rb[k]));
  }
  return false;
}

describe('window store against a per-stream array model', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('agrees on every push outcome, window, stale and evicted stream and count', () => {
    fc.assert(
      fc.property(
        configArb.chain((cfg) => fc.tuple(fc.constant(cfg), fc.array(opArb(cfg), { maxLength: 80, size: 'max' }))),
        ([cfg, ops]) => run(cfg, ops),
      ),
      { numRuns: 300 },
    );
  });

  it('agrees on a crowded table: one slot, streams taking turns through sweeps', () => {
    fc.assert(
      fc.property(
        configArb.map((cfg) => ({ ...cfg, maxStreams: 1, window: 2 })).chain((cfg) => fc.tuple(fc.constant(cfg), fc.array(opArb(cfg), { maxLength: 60, size: 'max' }))),
        ([cfg, ops]) => run(cfg, ops),
      ),
      { numRuns: 100 },
    );
  });
});
