/**
 * Admission to the bounded queue. With room, a reading is queued and acknowledged at once. When the
 * queue is full, QoS 1 waits for room (the acknowledgement waits, and mqtt.js reads no further message:
 * backpressure). QoS 0 waits too, while the queue has been full for less than qos0MaxWaitMs: on one
 * thread, scoring cannot run while a burst of messages is being read, so a queue that fills during a
 * burst is not yet overload. A backlog that stays up longer (the pipeline, queue and batches waiting for
 * the model, has not drained to half since the queue filled) is overload: the drop policy applies to
 * every QoS 0 reading that finds the queue full, until the backlog is down to half, so the daemon sheds
 * load and stays current instead of falling behind.
 */
import type { ReadingQueue } from './bounded-queue.js';

export type DropPolicy = 'drop-oldest' | 'drop-newest';

/** What is buffered between intake and decisions: by default the queue alone. */
export interface Backlog {
  readonly size: number;
  readonly capacity: number;
}

export interface AdmissionOptions {
  dropPolicy: DropPolicy;
  qos0MaxWaitMs: number;
  /** Monotonic clock in ms (tests pass their own). */
  now?: () => number;
  /** The backlog whose draining to half ends an overload (the daemon adds the batches in flight). */
  backlog?: Backlog;
}

export interface AdmissionHooks {
  onQueued(): void;
  onDropped(policy: DropPolicy): void;
  onWait(qos: 0 | 1): void;
  /** A QoS 0 wait ran out and the drop policy was applied (the queue may have changed). */
  onWaitOver(): void;
}

interface Waiting<T> {
  item: T;
  qos: 0 | 1;
  ack: () => void;
}

export class QueueAdmission<T> {
  private waiting: Waiting<T> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the queue filled up, if the backlog has not drained to half since. */
  private fullSince: number | null = null;
  private overloaded = false;
  private readonly now: () => number;
  private readonly backlog: Backlog;

  constructor(
    private readonly queue: ReadingQueue<T>,
    private readonly options: AdmissionOptions,
    private readonly hooks: AdmissionHooks,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.backlog = options.backlog ?? queue;
  }

  /** True while a reading waits for room (its message is not yet acknowledged). */
  get isWaiting(): boolean {
    return this.waiting !== null;
  }

  /** True once the queue stayed full past qos0MaxWaitMs, until the backlog is down to half. */
  get isOverloaded(): boolean {
    return this.overloaded;
  }

  /** Queues `item`, or makes it wait, or drops it; `ack` is called once it is queued or dropped. */
  offer(item: T, qos: 0 | 1, ack: () => void): void {
    if (this.queue.offer(item)) {
      if (this.fullSince !== null && this.backlog.size <= this.backlog.capacity / 2) {
        this.fullSince = null;
        this.overloaded = false;
      }
      this.hooks.onQueued();
      ack();
      return;
    }
    const now = this.now();
    this.fullSince ??= now;
    const left = this.fullSince + this.options.qos0MaxWaitMs - now;
    if (qos === 1 || (!this.overloaded && left > 0)) {
      this.waiting = { item, qos, ack };
      this.hooks.onWait(qos);
      if (qos === 0) this.timer = setTimeout(this.waitOver, left);
    } else {
      this.overloaded = true;
      this.drop(item, ack);
    }
  }

  /** Queues the waiting reading if there is room now; call after readings left the queue. */
  retry(): void {
    const waiting = this.waiting;
    if (waiting === null || !this.queue.offer(waiting.item)) return;
    this.waiting = null;
    this.cancelTimer();
    this.hooks.onQueued();
    waiting.ack();
  }

  /** Stops the QoS 0 clock: on shutdown the waiting reading is queued by the drain, not dropped. */
  cancelTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private readonly waitOver = (): void => {
    this.timer = null;
    const waiting = this.waiting;
    if (waiting === null || waiting.qos !== 0) return;
    this.waiting = null;
    this.overloaded = true;
    this.drop(waiting.item, waiting.ack);
    this.hooks.onWaitOver();
  };

  private drop(item: T, ack: () => void): void {
    // drop-oldest: the newcomer takes the evicted reading's place, so queued stays as it was and
    // received = queued + dropped holds for both policies.
    if (this.options.dropPolicy === 'drop-oldest') this.queue.offerDropOldest(item);
    this.hooks.onDropped(this.options.dropPolicy);
    ack();
  }
}
