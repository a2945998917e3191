/**
 * The API's own micro-batcher: requests for one model that arrive within `delayMs` share one model run
 * (up to `maxBatch` windows), at most `maxQueued` windows wait in all, and one API run is in flight at a
 * time, so API traffic takes at most one run's worth of a core from the MQTT pipeline.
 */
import type { Scorer } from '../model/scorer.js';

/** The scorer for a model name now (a hot swap replaces it between two runs), or null when not loaded. */
export type ScorerLookup = (model: string) => Scorer | null;

export interface ScoredWindows {
  scorer: Scorer;
  /** One score per window of the request. */
  scores: Float32Array;
  /** [windows × channels], or null when the model has none. */
  contributions: Float32Array | null;
}

/** Why the batcher could not score a request: nothing wrong with the request itself. */
export class NotScored extends Error {
  constructor(
    readonly reason: 'not_loaded' | 'shape_changed' | 'stopping',
    message: string,
  ) {
    super(message);
    this.name = 'NotScored';
  }
}

interface Job {
  model: string;
  input: Float32Array;
  windows: number;
  /** window × channels the request was packed for. */
  valuesPerWindow: number;
  settled: boolean;
  resolve(result: ScoredWindows): void;
  reject(err: Error): void;
}

export interface BatcherOptions {
  maxBatch: number;
  maxQueued: number;
  delayMs: number;
  /** After each model run: its windows and model name. */
  onRun?(windows: number, model: string): void;
  onQueued?(windows: number): void;
}

export class ApiBatcher {
  private waiting: Job[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly buffers = new Map<string, Float32Array>();

  constructor(
    private readonly lookup: ScorerLookup,
    private readonly options: BatcherOptions,
  ) {}

  /** Windows accepted and not yet scored. */
  get queuedWindows(): number {
    return this.queued;
  }

  /**
   * Queues a request's windows; resolves with their scores. Returns null, queuing nothing, when they
   * would take the queue past its bound (the caller answers 429).
   */
  submit(model: string, input: Float32Array, windows: number): Promise<ScoredWindows> | null {
    if (this.stopped) return Promise.reject(new NotScored('stopping', 'the API is stopping'));
    if (this.queued + windows > this.options.maxQueued) return null;
    this.queued += windows;
    this.options.onQueued?.(this.queued);
    return new Promise<ScoredWindows>((resolve, reject) => {
      this.waiting.push({ model, input, windows, valuesPerWindow: input.length / windows, settled: false, resolve, reject });
      this.schedule();
    });
  }

  /** Refuses new work, fails what waits, and resolves once the run in flight has ended (or the deadline). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    const left = this.waiting;
    this.waiting = [];
    for (const job of left) this.settle(job, new NotScored('stopping', 'the API is stopping'));
    await this.running;
  }

  private schedule(): void {
    if (this.running !== null || this.timer !== null || this.immediate !== null || this.waiting.length === 0 || this.stopped) return;
    let pending = 0;
    for (const job of this.waiting) pending += job.windows;
    if (pending >= this.options.maxBatch || this.options.delayMs === 0) this.immediate = setImmediate(this.fire);
    else this.timer = setTimeout(this.fire, this.options.delayMs);
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.immediate = null;
    if (this.running !== null || this.waiting.length === 0) return;
    this.running = this.runOnce().finally(() => {
      this.running = null;
      this.schedule();
    });
  };

  /** One model run: the oldest job's model, and every waiting job of that model that fits, in order. */
  private async runOnce(): Promise<void> {
    const first = this.waiting[0] as Job;
    const batch: Job[] = [];
    const rest: Job[] = [];
    let windows = 0;
    for (const job of this.waiting) {
      // A request larger than maxBatch runs alone (at most api.maxWindowsPerRequest windows).
      if (job.model === first.model && job.valuesPerWindow === first.valuesPerWindow && (batch.length === 0 || windows + job.windows <= this.options.maxBatch)) {
        batch.push(job);
        windows += job.windows;
      } else rest.push(job);
    }
    this.waiting = rest;
    try {
      await this.score(first, batch, windows);
    } catch (err) {
      // A bug (the lookup or the model threw synchronously): these requests fail, the batcher goes on.
      this.fail(batch, err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async score(first: Job, batch: readonly Job[], windows: number): Promise<void> {
    // Asked per run: a hot swap replaces the route's scorer between two runs.
    const scorer = this.lookup(first.model);
    if (scorer === null) return this.fail(batch, new NotScored('not_loaded', `model "${first.model}" is not loaded`));
    const { window, channels } = scorer.manifest;
    if (window * channels.length !== first.valuesPerWindow) {
      return this.fail(batch, new NotScored('shape_changed', `model "${first.model}" changed shape since the request was checked`));
    }
    const input = this.bufferFor(first.model, windows * first.valuesPerWindow, first.valuesPerWindow);
    let at = 0;
    for (const job of batch) {
      input.set(job.input, at);
      at += job.input.length;
    }
    let output;
    try {
      output = await scorer.score(input, windows);
    } catch (err) {
      return this.fail(batch, err instanceof Error ? err : new Error(String(err)));
    }
    this.options.onRun?.(windows, first.model);
    const width = channels.length;
    let from = 0;
    for (const job of batch) {
      // Copies: the session's output buffers are not ours to hand out.
      const scores = output.scores.slice(from, from + job.windows);
      const contributions = output.contributions === null ? null : output.contributions.slice(from * width, (from + job.windows) * width);
      from += job.windows;
      if (job.settled) continue;
      job.settled = true;
      this.release(job.windows);
      job.resolve({ scorer, scores, contributions });
    }
  }

  private bufferFor(model: string, length: number, valuesPerWindow: number): Float32Array {
    const held = this.buffers.get(model);
    if (held !== undefined && held.length >= length) return held.subarray(0, length);
    // Sized for a full batch at once, so it is reallocated only for a request larger than maxBatch.
    const fresh = new Float32Array(Math.max(length, this.options.maxBatch * valuesPerWindow));
    this.buffers.set(model, fresh);
    return fresh.subarray(0, length);
  }

  private fail(batch: readonly Job[], err: Error): void {
    for (const job of batch) this.settle(job, err);
  }

  private settle(job: Job, err: Error): void {
    if (job.settled) return;
    job.settled = true;
    this.release(job.windows);
    job.reject(err);
  }

  private release(windows: number): void {
    this.queued -= windows;
    this.options.onQueued?.(this.queued);
  }
}
