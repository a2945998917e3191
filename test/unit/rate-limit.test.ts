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
});

