import { describe, expect, it } from 'vitest';
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

