import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import { WindowStore, type StreamSlot, type WindowOptions } from '../../src/window/window-store.js';

const base: WindowOptions = { window: 3, channels: 2, maxStreams: 10, staleAfterMs: 1000, idleTtlMs: 5000, normalization: { kind: 'graph' } };

const row = (streamId: string, ts: number, a: number, b: number, tsFromPayload = true): Reading => ({
  streamId, ts, tsFromPayload, receivedAt: ts, channel: -1, value: 0, values: Float32Array.of(a, b),
});
const point = (streamId: string, ts: number, channel: number, value: number): Reading => ({
  streamId, ts, tsFromPayload: true, receivedAt: ts, channel, value, values: null,
});

function windowOf(store: WindowStore, stream: StreamSlot, values = 6): number[] {
  const out = new Float32Array(values + 2);
  store.copyWindow(stream, out, 1);
  return Array.from(out.subarray(1, 1 + values));
}

describe('window store', () => {
  it('is ready once N rows are in, and slides oldest-first', () => {
    const store = new WindowStore(base);
    expect(store.push(row('s', 1, 1, 10), 0)).toBe('filling');
    expect(store.push(row('s', 2, 2, 20), 0)).toBe('filling');
    const w = store.push(row('s', 3, 3, 30), 0);
    expect(typeof w).toBe('number');
    expect(windowOf(store, w as StreamSlot)).toEqual([1, 10, 2, 20, 3, 30]);
    const w2 = store.push(row('s', 4, 4, 40), 0) as StreamSlot;
    expect(windowOf(store, w2)).toEqual([2, 20, 3, 30, 4, 40]);
    expect(store.lastTs(w2)).toBe(4);
    expect(store.streamId(w2)).toBe('s');
  });

  it('rejects out-of-order and duplicate payload timestamps, not receive-time ones', () => {
    const store = new WindowStore(base);
    store.push(row('s', 10, 1, 1), 0);
    expect(store.push(row('s', 10, 1, 1), 0)).toBe('duplicate');
    expect(store.push(row('s', 9, 1, 1), 0)).toBe('out_of_order');
    expect(store.push(row('s', 10, 1, 1, false), 0)).toBe('filling');
  });

  it('assembles single-channel readings into rows, carrying forward a channel that is late', () => {
    const store = new WindowStore({ ...base, window: 2 });
    expect(store.push(point('s', 1, 0, 1), 0)).toBe('filling');
    expect(store.push(point('s', 1, 1, 10), 0)).toBe('filling');
    expect(store.push(point('s', 2, 1, 20), 0)).toBe('filling');
    // channel 1 repeats before channel 0 arrived: the row is committed with channel 0 carried forward
    const w = store.push(point('s', 3, 1, 30), 0);
    expect(typeof w).toBe('number');
    expect(windowOf(store, w as StreamSlot, 4)).toEqual([1, 10, 1, 20]);
    expect(store.push(point('s', 3, 1, 30), 0)).toBe('duplicate');
  });

  it('applies z-score normalisation when the manifest asks for it', () => {
    const store = new WindowStore({ ...base, window: 1, normalization: { kind: 'zscore', mean: [1, 10], std: [2, 5] } });
    const w = store.push(row('s', 1, 5, 0), 0) as StreamSlot;
    expect(windowOf(store, w, 2)).toEqual([2, -2]);
  });

  it('marks silent streams stale, restarts their window on return, and evicts idle ones', () => {
    const store = new WindowStore(base);
    for (let t = 1; t <= 3; t++) store.push(row('a', t, t, t), 0);
    store.push(row('b', 1, 1, 1), 4000);
    expect(store.sweep(1500)).toEqual({ becameStale: ['a'], evicted: [] });
    expect(store.staleCount).toBe(1);
    expect(store.push(row('a', 4, 4, 4), 1600)).toBe('filling');
    expect(store.staleCount).toBe(0);
    expect(store.gapsClosed).toBe(1);
    expect(store.sweep(9000)).toEqual({ becameStale: [], evicted: ['a', 'b'] });
    expect(store.size).toBe(0);
  });

  it('bounds the number of streams', () => {
    const store = new WindowStore({ ...base, maxStreams: 2 });
    store.push(row('a', 1, 1, 1), 0);
    store.push(row('b', 1, 1, 1), 0);
    expect(store.push(row('c', 1, 1, 1), 0)).toBe('stream_limit');
    expect(store.size).toBe(2);
  });

  it('keeps thousands of streams apart across slabs', () => {
    const store = new WindowStore({ ...base, window: 4, channels: 1, maxStreams: 5000 });
    const one = (id: string, ts: number, value: number): Reading => ({ streamId: id, ts, tsFromPayload: true, receivedAt: ts + 0.5, channel: 0, value, values: null });
    const ready: StreamSlot[] = [];
    for (let t = 1; t <= 4; t++) {
      for (let s = 0; s < 3000; s++) {
        const outcome = store.push(one(`stream-${s}`, t, s * 10 + t), 0);
        if (t < 4) expect(outcome).toBe('filling');
        else ready.push(outcome as StreamSlot);
      }
    }
    expect(store.size).toBe(3000);
    for (const s of [0, 1023, 1024, 2047, 2999]) {
      const slot = ready[s] as StreamSlot;
      expect(store.streamId(slot)).toBe(`stream-${s}`);
      expect(store.lastTs(slot)).toBe(4);
      expect(store.lastReceivedAt(slot)).toBe(4.5);
      expect(windowOf(store, slot, 4)).toEqual([1, 2, 3, 4].map((t) => s * 10 + t));
    }
  });

  it('gives an evicted stream\'s slot to a new stream with an empty window', () => {
    const store = new WindowStore({ ...base, window: 2 });
    store.push(row('old', 1, 1, 1), 0);
    const oldSlot = store.push(row('old', 2, 2, 2), 0) as StreamSlot;
    store.push(point('old', 3, 0, 3), 0);
    expect(store.sweep(10_000).evicted).toEqual(['old']);
    // the new stream takes the freed slot: no rows, no half-assembled row, no last ts from the old one
    expect(store.push(point('new', 1, 1, 10), 10_000)).toBe('filling');
    expect(store.push(point('new', 1, 0, 5), 10_000)).toBe('filling');
    const slot = store.push(row('new', 2, 6, 60), 10_000) as StreamSlot;
    expect(slot).toBe(oldSlot);
    expect(store.streamId(slot)).toBe('new');
    expect(windowOf(store, slot, 4)).toEqual([5, 10, 6, 60]);
    expect(store.size).toBe(1);
  });
});

/** One-channel readings: windows of 4 floats, so a stream's estimated cost is 16 + 160 + 2 per id character. */
const single: WindowOptions = { ...base, window: 4, channels: 1 };
const one = (streamId: string, ts: number, value = ts, tsFromPayload = true): Reading => ({
  streamId, ts, tsFromPayload, receivedAt: ts, channel: 0, value, values: null,
});

describe('window store byte budget', () => {
  it('charges each stream its rows, a fixed overhead and 2 bytes per id character', () => {
    const store = new WindowStore(single);
    expect(store.bytes).toBe(0);
    store.push(one('abcd', 1), 0);
    expect(store.bytes).toBe(16 + 160 + 8);
    store.push(one('ab', 1), 0);
    expect(store.bytes).toBe(184 + 180);
    // a reading for a held stream costs nothing more
    store.push(one('ab', 2), 0);
    expect(store.bytes).toBe(364);
    // multi-channel streams also carry a row being assembled: 13 bytes a channel + 96
    const wide = new WindowStore(base);
    wide.push(row('ab', 1, 1, 1), 0);
    expect(wide.bytes).toBe(3 * 2 * 4 + 160 + (2 * 13 + 96) + 4);
  });

  it('admits streams until the next one would pass maxBytes, then refuses new ones (stream_limit)', () => {
    const store = new WindowStore({ ...single, maxBytes: 3 * 184 });
    for (const id of ['s001', 's002', 's003']) expect(store.push(one(id, 1), 0)).toBe('filling');
    expect(store.bytes).toBe(552);
    expect(store.push(one('s004', 1), 0)).toBe('stream_limit');
    expect(store.size).toBe(3);
    expect(store.bytes).toBe(552);
    expect(store.lastTsOf('s004')).toBeUndefined();
    // streams already held keep their place and keep reporting
    expect(store.push(one('s001', 2), 0)).toBe('filling');
  });

  it('counts the id: longer ids admit fewer streams, and a stream that fits exactly is admitted', () => {
    const store = new WindowStore({ ...single, maxBytes: 552 });
    expect(store.push(one('long1', 1), 0)).toBe('filling');
    expect(store.push(one('long2', 1), 0)).toBe('filling');
    // 2 × 186 + 186 = 558 > 552
    expect(store.push(one('long3', 1), 0)).toBe('stream_limit');
    // 2 × 186 + 180 = 552: exactly the budget
    expect(store.push(one('ab', 1), 0)).toBe('filling');
    expect(store.bytes).toBe(552);
    expect(store.push(one('c', 1), 0)).toBe('stream_limit');
  });

  it('gives the bytes back when a stream is evicted', () => {
    const store = new WindowStore({ ...single, maxBytes: 2 * 184 });
    store.push(one('s001', 1), 0);
    store.push(one('s002', 1), 0);
    expect(store.push(one('s003', 1), 0)).toBe('stream_limit');
    expect(store.sweep(single.idleTtlMs).evicted).toEqual(['s001', 's002']);
    expect(store.bytes).toBe(0);
    expect(store.push(one('s003', 1), 5000)).toBe('filling');
    expect(store.bytes).toBe(184);
  });

  it('makes room from stale streams when the budget is full, as many as the new id needs', () => {
    const evicted: string[] = [];
    const store = new WindowStore({ ...single, maxBytes: 2 * 180, onEvicted: (id) => evicted.push(id) });
    store.push(one('aa', 1), 0);
    store.push(one('bb', 1), 0);
    expect(store.sweep(1000).becameStale).toEqual(['aa', 'bb']);
    // a 3-character id (182 bytes) does not fit in the room of one 2-character id (180): both go
    expect(store.push(one('ccc', 1), 1000)).toBe('filling');
    expect(evicted).toEqual(['aa', 'bb']);
    expect(store.evictedForRoom).toBe(2);
    expect(store.size).toBe(1);
    expect(store.staleCount).toBe(0);
    expect(store.bytes).toBe(182);
  });
});

describe('window store eviction when the table is full', () => {
  const full = (onEvicted?: (id: string) => void): WindowStore => {
    const store = new WindowStore({ ...single, maxStreams: 3, staleAfterMs: 1000, idleTtlMs: 60_000, onEvicted });
    store.push(one('a', 1), 0);
    store.push(one('b', 1), 100);
    store.push(one('c', 1), 200);
    return store;
  };

  it('never evicts a stream that is still reporting', () => {
    const evicted: string[] = [];
    const store = full((id) => evicted.push(id));
    expect(store.push(one('d', 1), 500)).toBe('stream_limit');
    // a silent 999 ms is not stale yet: the fourth stream is still refused, not given its place
    expect(store.sweep(999).becameStale).toEqual([]);
    expect(store.push(one('d', 1), 999)).toBe('stream_limit');
    expect(store.size).toBe(3);
    expect(store.evictedForRoom).toBe(0);
    expect(evicted).toEqual([]);
    expect(store.lastTsOf('a')).toBe(1);
  });

  it('gives a stale stream\'s place to a new stream, counts it and reports it', () => {
    const evicted: string[] = [];
    const store = full((id) => evicted.push(id));
    store.push(one('b', 2), 900);
    store.push(one('c', 2), 900);
    // at 1500 only a (silent since 0) is stale
    expect(store.sweep(1500)).toEqual({ becameStale: ['a'], evicted: [] });
    expect(store.push(one('d', 1), 1500)).toBe('filling');
    expect(evicted).toEqual(['a']);
    expect(store.evictedForRoom).toBe(1);
    expect(store.staleCount).toBe(0);
    expect(store.size).toBe(3);
    expect(store.lastTsOf('a')).toBeUndefined();
    expect(store.lastTsOf('d')).toBe(1);
    // the next new stream finds no stale one left: b, c and d are all reporting
    expect(store.push(one('e', 1), 1500)).toBe('stream_limit');
    expect(store.evictedForRoom).toBe(1);
    expect(evicted).toEqual(['a']);
  });

  it('takes the longest-silent stale stream first, one per new stream', () => {
    const evicted: string[] = [];
    const store = full((id) => evicted.push(id));
    // a silent 3000 ms, b 2900, c 2800: all stale
    expect(store.sweep(3000).becameStale).toEqual(['a', 'b', 'c']);
    store.push(one('d', 1), 3000);
    expect(evicted).toEqual(['a']);
    store.push(one('e', 1), 3000);
    expect(evicted).toEqual(['a', 'b']);
    expect(store.evictedForRoom).toBe(2);
    expect(store.staleCount).toBe(1);
    expect(store.lastTsOf('c')).toBe(1);
  });

  it('a redelivered reading ends a gap once: the stream counts as seen, so the next sweep does not report it again', () => {
    const store = new WindowStore({ ...single, staleAfterMs: 100, idleTtlMs: 60_000 });
    store.push(one('a', 10), 0);
    expect(store.sweep(150).becameStale).toEqual(['a']);
    expect(store.push(one('a', 10), 160)).toBe('duplicate');
    expect(store.gapsClosed).toBe(1);
    expect(store.staleCount).toBe(0);
    expect(store.sweep(170).becameStale).toEqual([]);
    expect(store.sweep(260).becameStale).toEqual(['a']);
  });

  it('orders stale streams by silence, not by when they joined the table', () => {
    const evicted: string[] = [];
    const store = new WindowStore({ ...single, maxStreams: 2, staleAfterMs: 1000, idleTtlMs: 60_000, onEvicted: (id) => evicted.push(id) });
    store.push(one('first', 1), 0);
    store.push(one('second', 1), 100);
    store.push(one('first', 2), 5000);
    // first silent 1.5 s, second 6.4 s: second has been gone longer and goes first
    expect(store.sweep(6500).becameStale.sort()).toEqual(['first', 'second']);
    expect(store.push(one('third', 1), 6500)).toBe('filling');
    expect(evicted).toEqual(['second']);
    expect(store.lastTsOf('first')).toBe(2);
  });

  it('does not evict a stream that spoke again after the sweep marked it stale', () => {
    const evicted: string[] = [];
    const store = full((id) => evicted.push(id));
    expect(store.sweep(1150).becameStale).toEqual(['a', 'b']);
    store.push(one('a', 2), 1160);
    expect(store.gapsClosed).toBe(1);
    // a is back, so b is the only stale stream to take
    expect(store.push(one('d', 1), 1170)).toBe('filling');
    expect(evicted).toEqual(['b']);
    expect(store.push(one('e', 1), 1170)).toBe('stream_limit');
    expect(store.lastTsOf('a')).toBe(2);
  });
});

describe('window store clock steps', () => {
  const NOW = Date.parse('2026-06-01T00:00:00Z');

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('restarts the window when a real reading follows a row from beyond the tolerance', () => {
    const store = new WindowStore({ ...single, window: 3, futureRowToleranceMs: 1000 });
    store.push(one('s', NOW - 2, 1), 0);
    store.push(one('s', NOW - 1, 2), 0);
    expect(typeof store.push(one('s', NOW + 1001, 99), 0)).toBe('number');
    expect(store.lastTsOf('s')).toBe(NOW + 1001);
    // older than the newest row, yet not out_of_order: the window starts again from this reading
    expect(store.push(one('s', NOW, 3), 0)).toBe('filling');
    expect(store.clockSteps).toBe(1);
    expect(store.lastTsOf('s')).toBe(NOW);
    expect(store.push(one('s', NOW + 1, 4), 0)).toBe('filling');
    const slot = store.push(one('s', NOW + 2, 5), 0) as StreamSlot;
    expect(windowOf(store, slot, 3)).toEqual([3, 4, 5]);
    // order is trusted again once the newest row is believable
    expect(store.push(one('s', NOW + 1, 6), 0)).toBe('out_of_order');
    expect(store.push(one('s', NOW + 2, 6), 0)).toBe('duplicate');
    expect(store.clockSteps).toBe(1);
  });

  it('keeps ordering by a newest row at most the tolerance ahead of the wall clock', () => {
    const store = new WindowStore({ ...single, futureRowToleranceMs: 1000 });
    store.push(one('s', NOW + 1000), 0);
    expect(store.push(one('s', NOW), 0)).toBe('out_of_order');
    expect(store.push(one('s', NOW + 1000), 0)).toBe('duplicate');
    // judged against the wall clock when the older reading comes: 1001 ahead of a clock 1 ms later is within it
    store.push(one('t', NOW + 1001), 0);
    vi.setSystemTime(NOW + 1);
    expect(store.push(one('t', NOW), 0)).toBe('out_of_order');
    expect(store.clockSteps).toBe(0);
    expect(store.lastTsOf('s')).toBe(NOW + 1000);
  });

  it('defaults the tolerance to 60 s', () => {
    const store = new WindowStore(single);
    store.push(one('near', NOW + 60_000), 0);
    expect(store.push(one('near', NOW), 0)).toBe('out_of_order');
    store.push(one('far', NOW + 60_001), 0);
    expect(store.push(one('far', NOW), 0)).toBe('filling');
    expect(store.clockSteps).toBe(1);
  });

  it('does not step for a reading stamped with receive time', () => {
    const store = new WindowStore({ ...single, futureRowToleranceMs: 1000 });
    store.push(one('s', NOW + 3_600_000), 0);
    expect(store.push(one('s', NOW, 1, false), 0)).toBe('filling');
    expect(store.clockSteps).toBe(0);
  });

  it('drops a half-assembled row from the future with the window', () => {
    const store = new WindowStore({ ...base, window: 1, futureRowToleranceMs: 1000 });
    expect(typeof store.push(row('s', NOW + 5000, 1, 10), 0)).toBe('number');
    expect(store.push(point('s', NOW + 5001, 0, 2), 0)).toBe('filling');
    // channel 1 from the real clock must not complete a row with channel 0 from the future
    expect(store.push(point('s', NOW, 1, 30), 0)).toBe('filling');
    expect(store.clockSteps).toBe(1);
    const slot = store.push(point('s', NOW + 1, 0, 3), 0) as StreamSlot;
    expect(windowOf(store, slot, 2)).toEqual([3, 30]);
    expect(store.lastTsOf('s')).toBe(NOW + 1);
  });
});
