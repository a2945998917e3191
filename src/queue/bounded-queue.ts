/** The bounded queue between ingest and windows: a fixed-capacity ring buffer that never grows. */

export interface ReadingQueue<T> {
  readonly capacity: number;
  readonly size: number;
  /** Adds at the tail; false when full (the caller decides: wait for space, or drop). */
  offer(item: T): boolean;
  /** Adds at the tail, evicting the oldest item when full; returns the evicted item. */
  offerDropOldest(item: T): T | undefined;
  poll(): T | undefined;
}

export class BoundedQueue<T> implements ReadingQueue<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`queue capacity must be a positive integer, got ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  offer(item: T): boolean {
    if (this.count === this.capacity) return false;
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return true;
  }

  offerDropOldest(item: T): T | undefined {
    const evicted = this.count === this.capacity ? this.poll() : undefined;
    this.offer(item);
    return evicted;
  }

  poll(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return item;
  }
}
