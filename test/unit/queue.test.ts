import { afterEach, describe, expect, it, vi } from 'vitest';
import { QueueAdmission, type DropPolicy } from '../../src/queue/admission.js';
import { BoundedQueue } from '../../src/queue/bounded-queue.js';

describe('bounded queue', () => {
  it('keeps FIFO order across wrap-around and refuses when full', () => {
    const q = new BoundedQueue<number>(3);
    expect([q.offer(1), q.offer(2), q.offer(3), q.offer(4)]).toEqual([true, true, true, false]);
    expect(q.size).toBe(3);
    expect(q.poll()).toBe(1);
    expect(q.offer(5)).toBe(true);
    expect([q.poll(), q.poll(), q.poll(), q.poll()]).toEqual([2, 3, 5, undefined]);
  });

  it('drop-oldest evicts the head and returns it', () => {
    const q = new BoundedQueue<string>(2);
    q.offer('a');
    q.offer('b');
    expect(q.offerDropOldest('c')).toBe('a');
    expect(q.offerDropOldest('d')).toBe('b');
    expect([q.poll(), q.poll()]).toEqual(['c', 'd']);
    expect(q.offerDropOldest('e')).toBeUndefined();
  });

  it('never grows past its capacity', () => {
    const q = new BoundedQueue<number>(100);
    for (let i = 0; i < 10_000; i++) q.offerDropOldest(i);
    expect(q.size).toBe(100);
    expect(q.poll()).toBe(9_900);
    expect(() => new BoundedQueue(0)).toThrow(/positive integer/);
  });
});

describe('queue admission', () => {
  function setup(options: { dropPolicy: DropPolicy; qos0MaxWaitMs: number }, capacity = 4) {
    const queue = new BoundedQueue<string>(capacity);
    const events: string[] = [];
    const admission = new QueueAdmission(queue, { ...options, now: () => Date.now() }, {
      onQueued: () => events.push('queued'),
      onDropped: (policy) => events.push(`dropped:${policy}`),
      onWait: (qos) => events.push(`wait:${qos}`),
      onWaitOver: () => events.push('wait-over'),
    });
    const acks: string[] = [];
    const offer = (item: string, qos: 0 | 1): void => admission.offer(item, qos, () => acks.push(item));
    const fill = (): void => {
      for (let i = 0; i < capacity; i++) offer(`f${i}`, 0);
      acks.length = 0;
      events.length = 0;
    };
    return { queue, admission, events, acks, offer, fill };
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it('queues and acknowledges at once while there is room', () => {
    const { queue, acks, events, offer } = setup({ dropPolicy: 'drop-oldest', qos0MaxWaitMs: 100 });
    offer('a', 0);
    offer('b', 1);
    expect(acks).toEqual(['a', 'b']);
    expect(events).toEqual(['queued', 'queued']);
    expect(queue.size).toBe(2);
  });

  it('QoS 1 on a full queue waits for room however long it takes, and never drops', () => {
    vi.useFakeTimers();
    const { queue, admission, acks, events, offer, fill } = setup({ dropPolicy: 'drop-oldest', qos0MaxWaitMs: 100 });
    fill();
    offer('x', 1);
    vi.advanceTimersByTime(60_000);
    expect(acks).toEqual([]);
    expect(admission.isWaiting).toBe(true);
    admission.retry();
    expect(acks).toEqual([]);
    queue.poll();
    admission.retry();
    expect(acks).toEqual(['x']);
    expect(events).toEqual(['wait:1', 'queued']);
    expect(admission.isWaiting).toBe(false);
  });

  it('QoS 0 on a full queue waits for room: a burst shorter than qos0MaxWaitMs loses nothing', () => {
    vi.useFakeTimers();
    const { queue, admission, acks, events, offer, fill } = setup({ dropPolicy: 'drop-newest', qos0MaxWaitMs: 100 });
    fill();
    offer('x', 0);
    vi.advanceTimersByTime(99);
    expect(acks).toEqual([]);
    queue.poll();
    admission.retry();
    vi.advanceTimersByTime(1_000);
    expect(acks).toEqual(['x']);
    expect(events).toEqual(['wait:0', 'queued']);
  });

  it('QoS 0 wait that runs out drops (drop-newest), then drops at once until the queue is half empty', () => {
    vi.useFakeTimers();
    const { queue, admission, acks, events, offer, fill } = setup({ dropPolicy: 'drop-newest', qos0MaxWaitMs: 100 });
    fill();
    offer('x', 0);
    vi.advanceTimersByTime(100);
    expect(acks).toEqual(['x']);
    expect(events).toEqual(['wait:0', 'dropped:drop-newest', 'wait-over']);
    expect(admission.isOverloaded).toBe(true);
    events.length = 0;
    offer('y', 0);
    expect(events).toEqual(['dropped:drop-newest']);
    queue.poll();
    offer('z', 0);
    // Full again after z: still overloaded.
    expect(admission.isOverloaded).toBe(true);
    queue.poll();
    queue.poll();
    queue.poll();
    offer('w', 0);
    expect(queue.size).toBe(2);
    expect(admission.isOverloaded).toBe(false);
    offer('v', 0);
    offer('u', 0);
    events.length = 0;
    offer('t', 0);
    expect(events).toEqual(['wait:0']);
    expect(acks).toEqual(['x', 'y', 'z', 'w', 'v', 'u']);
  });

  it('QoS 0 counts from when the queue filled: a queue that never drains to half runs out the wait across readings', () => {
    vi.useFakeTimers();
    const { queue, admission, acks, events, offer, fill } = setup({ dropPolicy: 'drop-newest', qos0MaxWaitMs: 100 });
    fill();
    offer('x', 0);
    vi.advanceTimersByTime(60);
    queue.poll();
    admission.retry();
    expect(acks).toEqual(['x']);
    offer('y', 0);
    vi.advanceTimersByTime(39);
    expect(acks).toEqual(['x']);
    vi.advanceTimersByTime(1);
    expect(acks).toEqual(['x', 'y']);
    expect(events).toEqual(['wait:0', 'queued', 'wait:0', 'dropped:drop-newest', 'wait-over']);
    expect(admission.isOverloaded).toBe(true);
  });

  it('drop-oldest: the wait runs out, the oldest reading goes and the newcomer takes the tail', () => {
    vi.useFakeTimers();
    const { queue, acks, events, offer, fill } = setup({ dropPolicy: 'drop-oldest', qos0MaxWaitMs: 50 });
    fill();
    offer('x', 0);
    vi.advanceTimersByTime(50);
    expect(acks).toEqual(['x']);
    expect(events).toEqual(['wait:0', 'dropped:drop-oldest', 'wait-over']);
    expect([queue.poll(), queue.poll(), queue.poll(), queue.poll()]).toEqual(['f1', 'f2', 'f3', 'x']);
  });

  it('qos0MaxWaitMs 0 drops at once; cancelTimer keeps a waiting reading for the drain', () => {
    vi.useFakeTimers();
    const now = setup({ dropPolicy: 'drop-newest', qos0MaxWaitMs: 0 });
    now.fill();
    now.offer('x', 0);
    expect(now.events).toEqual(['dropped:drop-newest']);
    const later = setup({ dropPolicy: 'drop-newest', qos0MaxWaitMs: 100 });
    later.fill();
    later.offer('x', 0);
    later.admission.cancelTimer();
    vi.advanceTimersByTime(1_000);
    expect(later.acks).toEqual([]);
    later.queue.poll();
    later.admission.retry();
    expect(later.acks).toEqual(['x']);
    expect(later.events).toEqual(['wait:0', 'queued']);
  });
});
