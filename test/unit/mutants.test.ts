/**
 * Boundaries the rest of the unit suite let slip: each test here fails under a plausible one-token
 * change that every other unit test passes (the overload threshold in admission, the cooldown edge in
 * hysteresis, the channel cycling of z-score normalisation).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HysteresisDecider } from '../../src/decide/hysteresis.js';
import type { Reading } from '../../src/ingest/reading.js';
import { QueueAdmission, type Backlog } from '../../src/queue/admission.js';
import { BoundedQueue } from '../../src/queue/bounded-queue.js';
import { WindowStore, type StreamSlot } from '../../src/window/window-store.js';

describe('admission: QoS 0 overload ends when the backlog is down to half', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function overloaded(capacity: number, backlog?: (queue: BoundedQueue<string>) => Backlog) {
    const queue = new BoundedQueue<string>(capacity);
    const events: string[] = [];
    const admission = new QueueAdmission(
      queue,
      { dropPolicy: 'drop-newest', qos0MaxWaitMs: 100, now: () => Date.now(), backlog: backlog?.(queue) },
      {
        onQueued: () => events.push('queued'),
        onDropped: () => events.push('dropped'),
        onWait: (qos) => events.push(`wait:${qos}`),
        onWaitOver: () => events.push('wait-over'),
      },
    );
    const offer = (item: string): void => admission.offer(item, 0, () => undefined);
    for (let i = 0; i < capacity; i++) offer(`f${i}`);
    offer('late');
    vi.advanceTimersByTime(100);
    expect(admission.isOverloaded).toBe(true);
    events.length = 0;
    const drainTo = (size: number): void => {
      while (queue.size > size) queue.poll();
    };
    return { queue, admission, events, offer, drainTo };
  }

  it('even capacity 4: a reading that leaves 3 queued keeps the overload, one that leaves 2 ends it', () => {
    const { queue, admission, events, offer, drainTo } = overloaded(4);
    drainTo(2);
    offer('a');
    expect(queue.size).toBe(3);
    expect(admission.isOverloaded).toBe(true);
    // still overloaded: a reading that finds the queue full is dropped at once, without a wait
    offer('b');
    offer('c');
    expect(queue.size).toBe(4);
    expect(events).toEqual(['queued', 'queued', 'dropped']);
    events.length = 0;

    drainTo(1);
    offer('d');
    expect(queue.size).toBe(2);
    expect(admission.isOverloaded).toBe(false);
    // the overload is over: a reading that finds the queue full waits again
    offer('e');
    offer('f');
    offer('g');
    expect(events).toEqual(['queued', 'queued', 'queued', 'wait:0']);
  });

  it('odd capacity 5: half is 2.5, so 3 queued keeps the overload and 2 ends it', () => {
    const { queue, admission, offer, drainTo } = overloaded(5);
    drainTo(2);
    offer('a');
    expect(queue.size).toBe(3);
    expect(admission.isOverloaded).toBe(true);
    drainTo(1);
    offer('b');
    expect(queue.size).toBe(2);
    expect(admission.isOverloaded).toBe(false);
  });

  it('judges the backlog it is given (queue plus batches in flight), not the queue alone', () => {
    let inFlight = 6;
    const { queue, admission, offer, drainTo } = overloaded(4, (q) => ({
      get size() {
        return q.size + inFlight;
      },
      capacity: 10,
    }));
    // the queue alone is down to 1 of 4, but the backlog is 7 of 10: still overloaded
    drainTo(0);
    offer('a');
    expect(queue.size).toBe(1);
    expect(admission.isOverloaded).toBe(true);
    // 6 of 10 is still above half
    inFlight = 4;
    offer('b');
    expect(admission.isOverloaded).toBe(true);
    // 5 of 10 is half: over
    inFlight = 2;
    offer('c');
    expect(queue.size).toBe(3);
    expect(admission.isOverloaded).toBe(false);
  });
});

describe('hysteresis: no raise within cooldownMs of the last resolve', () => {
  const policy = { raiseThreshold: 10, clearThreshold: 5, raiseAfter: 3, resolveAfter: 2, cooldownMs: 10_000 };

  function resolvedAt4(): HysteresisDecider {
    const d = new HysteresisDecider(policy);
    expect([0, 1, 2, 3, 4].map((t) => d.decide('s', t, t < 3 ? 11 : 1))).toEqual([null, null, 'raised', null, 'resolved']);
    return d;
  }

  it('holds a raise until 1 ms before the boundary and raises exactly at it', () => {
    const d = resolvedAt4();
    // resolved at 4, cooldown until 10 004: three high scores inside it do not raise
    expect([10_001, 10_002, 10_003].map((t) => d.decide('s', t, 11))).toEqual([null, null, null]);
    expect(d.isRaised('s')).toBe(false);
    // the run of high scores carried through the cooldown: the first score at the boundary raises
    expect(d.decide('s', 10_004, 11)).toBe('raised');
    expect(d.activeAlerts).toBe(1);
  });

  it('raises on a run whose third high score lands exactly on the boundary', () => {
    const d = resolvedAt4();
    expect([10_002, 10_003, 10_004].map((t) => d.decide('s', t, 12))).toEqual([null, null, 'raised']);
    expect(d.peakScore('s')).toBe(12);
  });

  it('keeps the cooling stream\'s state until the boundary and drops it at the boundary', () => {
    const d = resolvedAt4();
    expect(d.decide('s', 10_003, 1)).toBeNull();
    expect(d.tracked).toBe(1);
    expect(d.decide('s', 10_004, 1)).toBeNull();
    expect(d.tracked).toBe(0);
  });

  it('with cooldownMs 0 a new fault may raise at the very ms of the resolve', () => {
    const d = new HysteresisDecider({ ...policy, raiseAfter: 1, resolveAfter: 1, cooldownMs: 0 });
    expect(d.decide('s', 0, 11)).toBe('raised');
    expect(d.decide('s', 5, 1)).toBe('resolved');
    expect(d.decide('s', 5, 11)).toBe('raised');
  });
});

describe('window store: z-score normalisation applies each channel\'s mean and std to that channel', () => {
  const row = (streamId: string, ts: number, values: number[]): Reading => ({
    streamId, ts, tsFromPayload: true, receivedAt: ts, channel: -1, value: 0, values: Float32Array.from(values),
  });

  it('three channels, a window of four that has wrapped, copied at an offset that is not a row boundary', () => {
    const store = new WindowStore({
      window: 4, channels: 3, maxStreams: 4, staleAfterMs: 1000, idleTtlMs: 5000,
      normalization: { kind: 'zscore', mean: [1, 10, 100], std: [2, 4, 0.5] },
    });
    let slot: StreamSlot | undefined;
    for (let t = 1; t <= 6; t++) {
      const outcome = store.push(row('s', t, [t, 10 + 4 * t, 100 - t]), 0);
      if (t >= 4) slot = outcome as StreamSlot;
      else expect(outcome).toBe('filling');
    }
    const out = new Float32Array(5 + 12 + 1).fill(-777);
    store.copyWindow(slot as StreamSlot, out, 5);
    // rows 3..6 of [t, 10 + 4t, 100 - t] → [(t - 1) / 2, t, -2t]
    expect(Array.from(out.subarray(5, 17))).toEqual([1, 3, -6, 1.5, 4, -8, 2, 5, -10, 2.5, 6, -12]);
    expect(Array.from(out.subarray(0, 5))).toEqual([-777, -777, -777, -777, -777]);
    expect(out[17]).toBe(-777);
  });

  it('two channels, a window of three: every row, and a second window packed right after the first', () => {
    const store = new WindowStore({
      window: 3, channels: 2, maxStreams: 4, staleAfterMs: 1000, idleTtlMs: 5000,
      normalization: { kind: 'zscore', mean: [5, -5], std: [1, 0.25] },
    });
    let a: StreamSlot | undefined;
    let b: StreamSlot | undefined;
    for (let t = 1; t <= 4; t++) {
      a = store.push(row('a', t, [5 + t, -5 - t]), 0) as StreamSlot;
      b = store.push(row('b', t, [5 - t, -5 + 2 * t]), 0) as StreamSlot;
    }
    const batch = new Float32Array(2 * 6);
    store.copyWindow(a as StreamSlot, batch, 0);
    store.copyWindow(b as StreamSlot, batch, 6);
    // a: rows 2..4 → [t, -4t]; b: rows 2..4 → [-t, 8t]
    expect(Array.from(batch)).toEqual([2, -8, 3, -12, 4, -16, -2, 16, -3, 24, -4, 32]);
  });
});
