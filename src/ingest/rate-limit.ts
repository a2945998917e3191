/**
 * Per-stream rate limit: a chatty or hostile stream is cut off before its payloads are parsed.
 *
 * A token bucket of `perSecond` tokens refilled at `perSecond`/s, kept as GCRA: one number per stream,
 * the time its bucket will be full again. A stream whose bucket is full needs no entry at all, so
 * prune() keeps only the streams that spoke in the last second, not every stream ever seen.
 */
interface Bucket {
  /** When (ms) the bucket is full again; updated in place, so a known stream costs one lookup. */
  fullAt: number;
}

export class StreamRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly interval: number;
  private readonly burst: number;

  /** `perSecond` readings per second per stream, with a one-second burst; `maxTracked` bounds memory. */
  constructor(
    perSecond: number,
    private readonly maxTracked: number,
  ) {
    this.interval = 1000 / perSecond;
    // Below one reading a second the burst is the one reading itself, never negative.
    this.burst = Math.max(0, 1000 - this.interval);
  }

  get tracked(): number {
    return this.buckets.size;
  }

  allow(streamId: string, now: number): boolean {
    const bucket = this.buckets.get(streamId);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxTracked) {
        this.prune(now);
        // Every tracked stream is busy: forgetting them all is crude but bounded; each only gains a fresh burst.
        if (this.buckets.size >= this.maxTracked) this.buckets.clear();
      }
      this.buckets.set(streamId, { fullAt: now + this.interval });
      return true;
    }
    const fullAt = bucket.fullAt < now ? now : bucket.fullAt;
    if (fullAt - now > this.burst) return false;
    bucket.fullAt = fullAt + this.interval;
    return true;
  }

  /**
   * Like allow(), but says how long to wait instead of refusing: 0 means the reading may go now (its
   * token is taken); otherwise the milliseconds until the stream's bucket has a token again.
   */
  delay(streamId: string, now: number): number {
    const bucket = this.buckets.get(streamId);
    if (bucket === undefined) return this.allow(streamId, now) ? 0 : this.interval;
    const fullAt = bucket.fullAt < now ? now : bucket.fullAt;
    const wait = fullAt - now - this.burst;
    if (wait > 0) return Math.ceil(wait);
    bucket.fullAt = fullAt + this.interval;
    return 0;
  }

  /** Forgets streams whose bucket has refilled; they behave exactly as if never seen. */
  prune(now: number): void {
    for (const [streamId, bucket] of this.buckets) if (bucket.fullAt <= now) this.buckets.delete(streamId);
  }
}
