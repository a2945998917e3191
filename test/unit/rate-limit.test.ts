import { describe, expect, it } from 'vitest';
import { StreamRateLimiter } from '../../src/ingest/rate-limit.js';

describe('per-stream rate limit', () => {
  it('allows a one-second burst, then the refill rate, per stream', () => {
    const limiter = new StreamRateLimiter(10, 100);
    const allowed = (stream: string, at: number, n: number): number => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (limiter.allow(stream, at)) ok++;
      return ok;
    };
    expect(allowed('a', 0, 25)).toBe(10);
    expect(allowed('b', 0, 25)).toBe(10);
    expect(allowed('a', 500, 25)).toBe(5);
    expect(allowed('a', 10_000, 25)).toBe(10);
  });

  it('bounds the number of tracked streams', () => {
    const limiter = new StreamRateLimiter(1, 3);
    for (const s of ['a', 'b', 'c']) expect(limiter.allow(s, 0)).toBe(true);
    expect(limiter.allow('a', 0)).toBe(false);
    expect(limiter.allow('d', 0)).toBe(true); // the cap forgot every bucket
    expect(limiter.allow('a', 0)).toBe(true);
  });

  it('forgets streams whose bucket has refilled, and they behave as new', () => {
    const limiter = new StreamRateLimiter(4, 1000);
    for (let s = 0; s < 100; s++) expect(limiter.allow(`s${s}`, 0)).toBe(true);
    for (let i = 0; i < 3; i++) expect(limiter.allow('busy', 0)).toBe(true);
    expect(limiter.tracked).toBe(101);
    // each quiet stream sent 1 of 4 (full again at 250 ms); busy sent 3 (full at 750 ms)
    limiter.prune(250);
    expect(limiter.tracked).toBe(1);
    expect(limiter.allow('busy', 250)).toBe(true);
    expect(limiter.allow('busy', 250)).toBe(true);
    expect(limiter.allow('busy', 250)).toBe(false);
    limiter.prune(2000);
    expect(limiter.tracked).toBe(0);
    let allowed = 0;
    for (let i = 0; i < 10; i++) if (limiter.allow('s0', 2000)) allowed++;
    expect(allowed).toBe(4);
  });

  it('at the cap, drops refilled streams before it forgets busy ones', () => {
    const limiter = new StreamRateLimiter(1, 3);
    expect(limiter.allow('a', 0)).toBe(true);
    expect(limiter.allow('b', 900)).toBe(true);
    expect(limiter.allow('c', 1500)).toBe(true);
    // at 1600 only a (full at 1000) has refilled: d takes its place and b, c keep their state
    expect(limiter.allow('d', 1600)).toBe(true);
    expect(limiter.tracked).toBe(3);
    expect(limiter.allow('c', 1600)).toBe(false);
  });

  it('delay() is 0 within the burst, then the time until the next token, without taking one', () => {
    const limiter = new StreamRateLimiter(10, 100);
    for (let i = 0; i < 10; i++) expect(limiter.delay('a', 0)).toBe(0);
    // the 11th must wait one interval (1/rate); asking again does not take a token or push it further out
    expect(limiter.delay('a', 0)).toBe(100);
    expect(limiter.delay('a', 0)).toBe(100);
    expect(limiter.delay('a', 60)).toBe(40);
    expect(limiter.delay('a', 99)).toBe(1);
    expect(limiter.delay('a', 100)).toBe(0);
    expect(limiter.delay('a', 100)).toBe(100);
    // other streams have their own bucket
    expect(limiter.delay('b', 100)).toBe(0);
  });

  it('delay() and allow() draw on the same bucket', () => {
    const limiter = new StreamRateLimiter(10, 100);
    for (let i = 0; i < 9; i++) expect(limiter.allow('a', 0)).toBe(true);
    expect(limiter.delay('a', 0)).toBe(0);
    expect(limiter.allow('a', 0)).toBe(false);
    expect(limiter.delay('a', 0)).toBe(100);
    expect(limiter.delay('a', 100)).toBe(0);
    expect(limiter.allow('a', 100)).toBe(false);
  });

  it('below one reading a second, the burst is one reading and the rate holds', () => {
    const limiter = new StreamRateLimiter(0.5, 100);
    expect(limiter.allow('a', 0)).toBe(true);
    expect(limiter.allow('a', 1999)).toBe(false);
    expect(limiter.allow('a', 2000)).toBe(true);
    expect(limiter.delay('a', 2000)).toBe(2000);
    expect(limiter.delay('a', 4000)).toBe(0);
    expect(limiter.delay('a', 10_000)).toBe(0);
  });

  it('delay() rounds a fractional wait up, so waiting as told is always enough', () => {
    const limiter = new StreamRateLimiter(3, 100);
    for (let i = 0; i < 3; i++) expect(limiter.delay('a', 0)).toBe(0);
    // the next token is due at 333.3 ms: 333 would wake too early
    expect(limiter.delay('a', 0)).toBe(334);
    expect(limiter.delay('a', 333)).toBe(1);
    expect(limiter.delay('a', 334)).toBe(0);
  });

  it('readings that wait as delay() says go at exactly the rate after the burst', () => {
    const limiter = new StreamRateLimiter(10, 100);
    const takenAt: number[] = [];
    let now = 0;
    while (takenAt.length < 30) {
      const wait = limiter.delay('a', now);
      if (wait === 0) takenAt.push(now);
      else now += wait;
    }
    expect(takenAt.slice(0, 10)).toEqual(new Array(10).fill(0));
    expect(takenAt.slice(10)).toEqual(Array.from({ length: 20 }, (_, i) => 100 * (i + 1)));
  });

  it('delay() is 0 for a new stream even when the table is at its cap', () => {
    const limiter = new StreamRateLimiter(1, 2);
    expect(limiter.delay('a', 0)).toBe(0);
    expect(limiter.delay('b', 0)).toBe(0);
    expect(limiter.delay('a', 0)).toBe(1000);
    // the cap forgets every busy bucket rather than make a new stream wait
    expect(limiter.delay('c', 0)).toBe(0);
    expect(limiter.tracked).toBe(1);
    expect(limiter.delay('a', 0)).toBe(0);
  });
});
