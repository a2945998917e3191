import { describe, expect, it } from 'vitest';
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
