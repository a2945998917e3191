/**
 * Micro-batching: ready windows are packed into one float32 buffer and scored with one run per batch,
 * dispatched when the batch is full or its oldest window has waited maxDelayMs (Triton-style dynamic
 * batching). One batch runs at a time and one more may wait; beyond that canAccept() is false and the
 * pipeline stops pulling from the queue, so overload turns into backpressure, not memory.
 */
import type { ScoreOutput, Scorer } from '../model/scorer.js';
import type { StreamSlot, WindowStore } from '../window/window-store.js';

export class WindowBatch {
  readonly input: Float32Array;
  readonly streamIds: string[] = [];
  readonly ts: Float64Array;
  readonly receivedAt: Float64Array;
  size = 0;

  constructor(maxSize: number, windowValues: number) {
    this.input = new Float32Array(maxSize * windowValues);
    this.ts = new Float64Array(maxSize);
    this.receivedAt = new Float64Array(maxSize);
  }
}

export interface BatchResult {
  batch: WindowBatch;
  output: ScoreOutput;
  scorer: Scorer;
  /** Seconds the model run took. */
  inferenceSeconds: number;
}

/** A shadow (candidate) model's scores for a batch the live model scored first. */
export interface ShadowResult extends BatchResult {
  /** The live model's output for the same windows. */
  live: ScoreOutput;
  liveScorer: Scorer;
}

export interface BatchHooks {
  /** Scores for every window of a batch, in the order the windows were added. */
  onScored(result: BatchResult): void;
  /** The shadow model scored the same batch after the live one (only while a shadow is set). */
  onShadowScored?(result: ShadowResult): void;
  /** The shadow model's run failed: the live decisions stand, the shadow misses this batch. */
  onShadowFailed?(batch: WindowBatch, error: Error): void;
  onFailed(batch: WindowBatch, error: Error): void;
  /** Room for more windows again (the pipeline resumes draining the queue). */
  onCapacity(): void;
  /** A hook threw (a bug downstream): counted by the caller; the batcher carries on with the next batch. */
  onError?(error: Error): void;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export interface BatchOptions {
  maxSize: number;
  maxDelayMs: number;
}

export class MicroBatcher {
  private readonly pool: WindowBatch[] = [];
  private filling: WindowBatch;
  private waiting: WindowBatch | null = null;
  private running: Promise<void> | null = null;
  private runningSize = 0;
  private timer: NodeJS.Timeout | null = null;
  private nextScorer: Scorer | null = null;
  /** The shadow model scoring each batch after the live one, and the one taking its place between batches. */
  private shadow: Scorer | null = null;
  private nextShadow: { scorer: Scorer | null } | null = null;
  private idleWaiters: Array<() => void> = [];
  private readonly windowValues: number;

  constructor(
    private scorer: Scorer,
    private readonly windows: WindowStore,
    private readonly options: BatchOptions,
    private readonly hooks: BatchHooks,
  ) {
    this.windowValues = scorer.manifest.window * scorer.manifest.channels.length;
    this.filling = this.take();
  }

  get currentScorer(): Scorer {
    return this.scorer;
  }

  /** Windows added and not yet scored: filling, waiting and running. */
  get pending(): number {
    return this.filling.size + (this.waiting?.size ?? 0) + this.runningSize;
  }

  /** Most windows the batcher holds: one batch running, one waiting, one filling. */
  get capacity(): number {
    return 3 * this.options.maxSize;
  }

  canAccept(): boolean {
    return this.filling.size < this.options.maxSize;
  }

  /** Copies the stream's current window into the filling batch. Call only when canAccept(). */
  add(stream: StreamSlot): void {
    const batch = this.filling;
    const slot = batch.size++;
    this.windows.copyWindow(stream, batch.input, slot * this.windowValues);
    batch.streamIds[slot] = this.windows.streamId(stream);
    batch.ts[slot] = this.windows.lastTs(stream);
    batch.receivedAt[slot] = this.windows.lastReceivedAt(stream);
    if (batch.size === this.options.maxSize) this.seal();
    else if (slot === 0 && this.timer === null) this.timer = setTimeout(this.onTimer, this.options.maxDelayMs);
  }

  /** A model with the same input shape takes over from the next batch on; the old one is released. */
  swapScorer(next: Scorer): void {
    // A model queued for a swap that never happened is replaced, so release it.
    if (this.nextScorer !== null) void this.nextScorer.release();
    this.nextScorer = next;
    if (this.running === null) this.applySwap();
  }

  /** The shadow model scoring batches now, if any. */
  get currentShadow(): Scorer | null {
    return this.shadow;
  }

  /**
   * Sets (or clears, with null) the shadow model from the next batch on: it scores every batch after
   * the live model, the same windows, and never changes what the live model decides.
   */
  setShadow(next: Scorer | null): void {
    if (this.nextShadow?.scorer) void this.nextShadow.scorer.release();
    this.nextShadow = { scorer: next };
    if (this.running === null) this.applySwap();
  }

  /** Releases the model sessions (after drain()). */
  async release(): Promise<void> {
    if (this.nextScorer !== null) await this.nextScorer.release();
    this.nextScorer = null;
    if (this.nextShadow?.scorer) await this.nextShadow.scorer.release();
    this.nextShadow = null;
    if (this.shadow !== null) await this.shadow.release();
    this.shadow = null;
    await this.scorer.release();
  }

  /** Dispatches whatever is filling and resolves once nothing is queued or running. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.filling.size > 0 && this.waiting === null) this.seal();
      if (this.running === null && this.waiting === null && this.filling.size === 0) return;
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.filling.size > 0) this.seal();
  };

  private take(): WindowBatch {
    const batch = this.pool.pop() ?? new WindowBatch(this.options.maxSize, this.windowValues);
    batch.size = 0;
    return batch;
  }

  /** Closes the filling batch: it runs now, or waits behind the running one. */
  private seal(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running === null) {
      const batch = this.filling;
      this.filling = this.take();
      this.run(batch);
    } else if (this.waiting === null) {
      this.waiting = this.filling;
      this.filling = this.take();
    }
    // Otherwise the full batch stays in `filling` until the running one ends: canAccept() is false.
  }

  private run(batch: WindowBatch): void {
    const scorer = this.scorer;
    const shadow = this.shadow;
    const started = performance.now();
    this.runningSize = batch.size;
    // Every step of the chain handles its own errors: a rejection here would end the process.
    this.running = scorer
      .score(batch.input, batch.size)
      .then(
        async (output) => {
          this.hooks.onScored({ batch, output, scorer, inferenceSeconds: (performance.now() - started) / 1000 });
          // The batch's buffers stay ours until finished(): the shadow reads the very same windows.
          if (shadow !== null) await this.runShadow(batch, shadow, output, scorer);
        },
        (err: unknown) => this.hooks.onFailed(batch, asError(err)),
      )
      .catch((err: unknown) => this.reportError(err))
      .finally(() => {
        try {
          this.finished(batch);
        } catch (err) {
          this.reportError(err);
        }
      });
  }

  private async runShadow(batch: WindowBatch, shadow: Scorer, live: ScoreOutput, liveScorer: Scorer): Promise<void> {
    const started = performance.now();
    let output: ScoreOutput;
    try {
      output = await shadow.score(batch.input, batch.size);
    } catch (err) {
      this.hooks.onShadowFailed?.(batch, asError(err));
      return;
    }
    this.hooks.onShadowScored?.({ batch, output, scorer: shadow, inferenceSeconds: (performance.now() - started) / 1000, live, liveScorer });
  }

  private reportError(err: unknown): void {
    try {
      this.hooks.onError?.(asError(err));
    } catch {
      // The error hook itself failed: nothing safer is left to do than carry on.
    }
  }

  private finished(batch: WindowBatch): void {
    this.running = null;
    this.runningSize = 0;
    this.pool.push(batch);
    if (this.nextScorer !== null || this.nextShadow !== null) this.applySwap();
    if (this.waiting !== null) {
      const next = this.waiting;
      this.waiting = null;
      this.run(next);
      if (this.filling.size === this.options.maxSize) this.seal();
    } else if (this.filling.size > 0 && this.timer === null) {
      this.seal();
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    this.hooks.onCapacity();
  }

  private applySwap(): void {
    const next = this.nextScorer;
    if (next !== null) {
      const old = this.scorer;
      this.scorer = next;
      this.nextScorer = null;
      void old.release();
    }
    const shadow = this.nextShadow;
    if (shadow !== null) {
      const old = this.shadow;
      this.shadow = shadow.scorer;
      this.nextShadow = null;
      if (old !== null && old !== shadow.scorer) void old.release();
    }
  }
}
