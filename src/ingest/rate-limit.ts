/**
 * Per-stream rate limit: a chatty or hostile stream is cut off before its payloads are parsed.
 *
 * A token bucket of `perSecond` tokens refilled at `perSecond`/s, kept as GCRA: one number per stream,
 * the time its bucket will be full again. A stream whose bucket is full needs no entry at all, so
 * prune() keeps only the streams that spoke in the last second, not every stream ever seen.
 */
export class StreamRateLimiter {
  /** Stream id → the time (ms) at which its bucket is full again. */
  private readonly fullAt = new Map<string, number>();
  private readonly interval: number;
  private readonly burst: number;

  /** `perSecond` readings per second per stream, with a one-second burst; `maxTracked` bounds memory. */
  constructor(
    perSecond: number,
    private readonly maxTracked: number,
  ) {
    this.interval = 1000 / perSecond;
    this.burst = 1000 - this.interval;
  }

  get tracked(): number {
    return this.fullAt.size;
  }

  allow(streamId: string, now: number): boolean {
    let fullAt = this.fullAt.get(streamId);
    if (fullAt === undefined) {
      if (this.fullAt.size >= this.maxTracked) {
        this.prune(now);
        // Every tracked stream is busy: forgetting them all is crude but bounded; each only gains a fresh burst.
        if (this.fullAt.size >= this.maxTracked) this.fullAt.clear();
      }
      fullAt = now;
    } else if (fullAt < now) {
      fullAt = now;
    }
    if (fullAt - now > this.burst) return false;
    this.fullAt.set(streamId, fullAt + this.interval);
    return true;
  }

  /** Forgets streams whose bucket has refilled; they behave exactly as if never seen. */
  prune(now: number): void {
    for (const [streamId, fullAt] of this.fullAt) if (fullAt <= now) this.fullAt.delete(streamId);
  }
}
