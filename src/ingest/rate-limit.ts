/** Per-stream token buckets: a chatty or hostile stream is cut off before its payloads are parsed. */

interface Bucket {
  tokens: number;
  last: number;
}

export class StreamRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** `perSecond` readings per second per stream, with a one-second burst; `maxTracked` bounds memory. */
  constructor(
    private readonly perSecond: number,
    private readonly maxTracked: number,
  ) {}

  allow(streamId: string, now: number): boolean {
    let bucket = this.buckets.get(streamId);
    if (bucket === undefined) {
      // Forgetting every bucket at the cap is crude but bounded; a stream only gains a fresh burst.
      if (this.buckets.size >= this.maxTracked) this.buckets.clear();
      bucket = { tokens: this.perSecond, last: now };
      this.buckets.set(streamId, bucket);
    } else {
      bucket.tokens = Math.min(this.perSecond, bucket.tokens + ((now - bucket.last) / 1000) * this.perSecond);
      bucket.last = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
