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
});
