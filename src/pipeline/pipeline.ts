/**
 * The scoring pipeline behind ingest: bounded queue → per-stream windows → micro-batches → model →
 * decisions. It takes readings (ReadingSink), moves them from the queue into windows while the
 * batcher has room, and hands alerts to its caller. Everything between a queued reading and a decided
 * alert lives here; the daemon only connects it to ingest in front and the alert stage behind.
 */
import type { Alert } from '../alert/alert.js';
import { MicroBatcher, type BatchResult, type ShadowResult, type WindowBatch } from '../batch/micro-batcher.js';
import type { Config } from '../config/schema.js';
import { DecisionStage } from '../decide/decision-stage.js';
import { comparisonOutcomes, ShadowComparison, type ShadowTally } from '../decide/shadow.js';
import type { ReadingSink } from '../ingest/mqtt-ingest.js';
import type { Reading, RejectReason } from '../ingest/reading.js';
import type { Scorer } from '../model/scorer.js';
import { aborted, type Stage } from '../lifecycle/stage.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { ModelMetrics } from '../observe/metrics.js';
import { QueueAdmission, type Backlog } from '../queue/admission.js';
import { BoundedQueue } from '../queue/bounded-queue.js';
import { WindowStore } from '../window/window-store.js';
import { DriftTracker } from '../drift/tracker.js';
import { driftEvent, type DriftEvent, type DriftSnapshot } from '../drift/wire.js';
import type { Manifest } from '../model/manifest.js';
import { TopStreams, type ScoredStream } from '../observe/status-page-snapshot.js';
import type { BatchInfo, BatchTracer } from '../observe/tracing.js';

export interface PipelineHooks {
  /** Decided alerts, in order: the caller journals and publishes them. */
  onAlert(alert: Alert): void;
  /** A reading rejected after the queue (order, duplicate, stream table full). */
  onRejected(reason: RejectReason, detail: string, streamId: string): void;
  /** A valid QoS 0 reading dropped because the queue was full (by queue.dropPolicy). */
  onDropped(reason: 'queue_full_drop_newest' | 'queue_full_drop_oldest'): void;
  /** A bug caught at a stage boundary inside the pipeline. */
  onInternalError(stage: 'window' | 'decide', err: unknown): void;
  /** A stream changed drift or input-quality band: the caller publishes the event. */
  onDrift?(event: DriftEvent): void;
  /** Traces sampled batches when tracing is on (docs/tracing.md); unset, the pipeline makes no tracing call. */
  tracer?: BatchTracer;
}

export class Pipeline implements ReadingSink, Stage {
  /** The stage name: `pipeline:<the model's name in the config>`. */
  readonly name: string;
  private readonly queue: BoundedQueue<Reading>;
  private readonly admission: QueueAdmission<Reading>;
  readonly windows: WindowStore;
  private readonly batcher: MicroBatcher;
  private readonly decisions: DecisionStage;
  private pumping = false;
  /** Compares the shadow model's decisions with the live ones while a shadow is set. */
  private shadow: ShadowComparison | null = null;
  private shadowModel: Scorer | null = null;
  private readonly decisionOptions: { nodeName: string; topChannels: number };
  /** After stop: nothing more moves from the queue into windows. */
  private stopped = false;
  private queuedTally = 0;
  /** Per-stream input drift and quality against the serving model's training statistics; null when drift.enabled is off. */
  private drift: DriftTracker | null = null;
  private readonly driftOptions: { config: Config['drift']; maxStreams: number; nodeName: string };
  private clockStepsSeen = 0;
  /** The highest-scoring streams since the status page last asked; null until it first does. */
  private topStreams: TopStreams | null = null;
  private evictedForRoomSeen = 0;

  constructor(
    scorer: Scorer,
    config: Pick<Config, 'queue' | 'window' | 'batch' | 'nodeName' | 'alert' | 'drift'>,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    private readonly metrics: ModelMetrics,
    private readonly hooks: PipelineHooks,
  ) {
    this.name = `pipeline:${metrics.model}`;
    const { manifest } = scorer;
    this.queue = new BoundedQueue<Reading>(config.queue.capacity);
    // An overload ends once the queue and the batches in flight are down to half.
    const depth = (): number => this.queue.size + this.batcher.pending;
    const room = (): number => this.queue.capacity + this.batcher.capacity;
    const backlog: Backlog = {
      get size(): number {
        return depth();
      },
      get capacity(): number {
        return room();
      },
    };
    this.admission = new QueueAdmission(this.queue, { ...config.queue, backlog }, {
      onQueued: () => this.queuedTally++,
      onDropped: (policy) => hooks.onDropped(policy === 'drop-newest' ? 'queue_full_drop_newest' : 'queue_full_drop_oldest'),
      onWait: () => metrics.backpressureWaits.inc(),
      onWaitOver: () => this.pump(),
    });
    metrics.queueCapacity.set(config.queue.capacity);
    this.windows = new WindowStore({
      window: manifest.window,
      channels: manifest.channels.length,
      maxStreams: config.window.maxStreams,
      staleAfterMs: config.window.staleAfterMs,
      idleTtlMs: config.window.idleTtlMs,
      maxBytes: config.window.maxBytes,
      futureRowToleranceMs: config.window.futureRowToleranceMs,
      normalization: manifest.normalization,
      baseline: manifest.baseline,
      // Only stale streams make room, and a stale stream's alert was closed when it went stale.
      onEvicted: (streamId) => {
        this.decisions.forget(streamId);
        this.shadow?.forget(streamId);
        this.drift?.forget(streamId);
      },
    });
    this.decisionOptions = { nodeName: config.nodeName, topChannels: config.alert.topChannels };
    this.driftOptions = { config: config.drift, maxStreams: config.window.maxStreams, nodeName: config.nodeName };
    this.drift = this.driftTrackerFor(manifest);
    this.decisions = new DecisionStage(
      manifest,
      this.decisionOptions,
      {
        onAlert: (alert) => {
          // A stream's own baseline holds still while its alert is open (the fault must not become its normal).
          this.windows.holdBaseline(alert.streamId, alert.type === 'raised');
          metrics.alerts(alert.type).inc();
          hooks.onAlert(alert);
        },
        onSaturated: () => metrics.scoresSaturated.inc(),
        onError: (err) => hooks.onInternalError('decide', err),
      },
    );
    this.batcher = new MicroBatcher(scorer, this.windows, config.batch, {
      onScored: (result) => this.onScored(result),
      onFailed: (batch, err) => this.onBatchFailed(batch, err),
      onShadowScored: (result) => this.onShadowScored(result),
      onShadowFailed: (batch, err) => {
        metrics.shadowWindowsFailed.inc(batch.size);
        this.warner.warn('shadow-failed', { err: err.message, windows: batch.size }, 'shadow model run failed; the live decisions stand');
      },
      onCapacity: () => this.pump(),
      onError: (err) => hooks.onInternalError('decide', err),
    });
    metrics.addCollector(() => {
      const shadow = this.shadow?.take();
      if (shadow !== undefined) this.foldShadow(shadow);
      if (this.queuedTally > 0) metrics.readingsQueued.inc(this.queuedTally);
      this.queuedTally = 0;
      metrics.queueDepth.set(this.queue.size);
      const { windows } = this;
      if (windows.clockSteps > this.clockStepsSeen) metrics.clockSteps.inc(windows.clockSteps - this.clockStepsSeen);
      this.clockStepsSeen = windows.clockSteps;
      if (windows.evictedForRoom > this.evictedForRoomSeen) metrics.streamsEvicted('table_full').inc(windows.evictedForRoom - this.evictedForRoomSeen);
      this.evictedForRoomSeen = windows.evictedForRoom;
      if (this.drift !== null) metrics.setDriftBands(this.drift.bandCounts(), this.drift.qualityCounts());
    });
  }

  /** A tracker measuring against `manifest`'s training statistics (quality only when it has none). */
  private driftTrackerFor(manifest: Manifest): DriftTracker | null {
    const { config, maxStreams, nodeName } = this.driftOptions;
    if (!config.enabled) return null;
    const stats = manifest.training.stats;
    return new DriftTracker({
      maxStreams,
      channels: manifest.channels,
      stats: stats === undefined ? null : { channels: [...manifest.channels], mean: stats.mean, std: stats.std },
      // A model with per-stream baselines judges each stream against its own normal: so does drift, over
      // its first `horizon` readings (the span the drift averages cover), at least its baseline's warm-up.
      streamReference: manifest.baseline ? { readings: Math.max(manifest.baseline.warmupRows, config.horizon), minScale: manifest.baseline.minScale } : null,
      config,
      onBandChange: (change) => {
        this.metrics.driftEvent(change.measure);
        const model = this.batcher.currentScorer.manifest;
        const event = driftEvent(change, nodeName, { name: model.name, version: model.version }, Date.now());
        this.warner.warn(`drift-${change.measure}`, { streamId: event.streamId, from: event.from, to: event.to, channel: event.channel, drift: event.drift }, `stream changed ${change.measure} band`);
        this.hooks.onDrift?.(event);
      },
    });
  }

  /** Streams by drift and quality band and the most drifting ones, for the status message and the summary log; null when drift.enabled is off. */
  driftSnapshot(): DriftSnapshot | null {
    return this.drift?.snapshot(this.driftOptions.config.topN) ?? null;
  }

  /** ReadingSink: a reading of this stream was turned away before the queue (it counts against the stream's input quality). */
  rejected(streamId: string, reason: RejectReason): void {
    this.drift?.recordRejected(streamId, reason);
  }

  /**
   * The `n` highest-scoring streams since the last call, each with its highest score (the status page,
   * once per tick). Kept only once asked for: one comparison per scored window while the table is full.
   */
  takeTopStreams(n: number): ScoredStream[] {
    const top = this.topStreams;
    if (top === null || top.capacity !== n) {
      this.topStreams = new TopStreams(n);
      return [];
    }
    return top.drain(this.metrics.model);
  }

  /** Streams with an open alert. */
  get openAlerts(): number {
    return this.decisions.activeAlerts;
  }

  /** Readings queued and not yet in a window. */
  get queued(): number {
    return this.queue.size;
  }

  /** The model scoring the next batch. */
  get scorer(): Scorer {
    return this.batcher.currentScorer;
  }

  /** ReadingSink: queue the reading; a full queue makes it wait (QoS 1, and QoS 0 briefly) or drops it (QoS 0). */
  offer(reading: Reading, qos: 0 | 1, ack: () => void): void {
    this.admission.offer(reading, qos, ack);
    this.pump();
  }

  /** A model with the same input shape scores from the next batch on; batches already scored keep their model's policy. */
  swapModel(next: Scorer): void {
    const previous = this.batcher.currentScorer.manifest;
    this.batcher.swapScorer(next);
    // A retrained model's baseline scale floors (same rule: swapIncompatibility checked it).
    if (next.manifest.baseline !== undefined) this.windows.setBaselineFloors(next.manifest.baseline);
    // New training statistics are a new reference: the streams measure against it from scratch. With
    // per-stream baselines (kept across the swap) each stream's own first readings stay its reference.
    const ownReference = previous.baseline !== undefined && next.manifest.baseline !== undefined;
    if (!ownReference && JSON.stringify(previous.training.stats) !== JSON.stringify(next.manifest.training.stats)) this.drift = this.driftTrackerFor(next.manifest);
  }

  /**
   * Scores every batch with `next` too, after the live model, from the next batch on (null: no more).
   * Its decisions are compared with the live ones and counted, never published.
   */
  setShadow(next: Scorer | null): void {
    this.batcher.setShadow(next);
  }

  /** The shadow model scoring beside the live one now, if any. */
  get shadowScorer(): Scorer | null {
    return this.batcher.currentShadow;
  }

  /** Marks stale streams (data gaps, not anomalies) and evicts idle ones, closing their open alerts. */
  sweep(now: number): void {
    const { becameStale, evicted } = this.windows.sweep(now);
    const model = this.batcher.currentScorer.manifest;
    const shadow = this.batcher.currentShadow?.manifest ?? model;
    for (const streamId of becameStale) {
      const ts = this.windows.lastTsOf(streamId) ?? Date.now();
      this.decisions.closeSilent(streamId, 'stale', ts, model);
      this.shadow?.closeSilent(streamId, 'stale', ts, shadow);
    }
    for (const streamId of evicted) {
      this.drift?.forget(streamId);
      this.decisions.closeSilent(streamId, 'evicted', Date.now(), model);
      this.shadow?.closeSilent(streamId, 'evicted', Date.now(), shadow);
    }
    const { metrics } = this;
    if (becameStale.length > 0) {
      metrics.streamsWentStale.inc(becameStale.length);
      this.warner.warn('stale', { streams: becameStale.slice(0, 20), count: becameStale.length }, 'streams went silent (data gap)');
    }
    if (evicted.length > 0) metrics.streamsEvicted('idle').inc(evicted.length);
    metrics.streamsActive.set(this.windows.size);
    metrics.streamsStale.set(this.windows.staleCount);
    metrics.alertsActive.set(this.decisions.activeAlerts);
  }

  /** A stream its source declared gone (a Sparkplug death): stale now, its open alert closed as `stale`. */
  markStale(streamId: string): void {
    if (!this.windows.markStale(streamId)) return;
    const ts = this.windows.lastTsOf(streamId) ?? Date.now();
    this.decisions.closeSilent(streamId, 'stale', ts, this.batcher.currentScorer.manifest);
    this.shadow?.closeSilent(streamId, 'stale', ts, this.batcher.currentShadow?.manifest ?? this.batcher.currentScorer.manifest);
    this.metrics.streamsWentStale.inc();
    this.metrics.streamsStale.set(this.windows.staleCount);
    this.metrics.alertsActive.set(this.decisions.activeAlerts);
  }

  /** Nothing to open: the pipeline runs as readings arrive. */
  async start(): Promise<void> {}

  /** Scores and decides everything queued or in flight; false when the deadline passed first. */
  private async drain(deadline: AbortSignal): Promise<boolean> {
    const late = aborted(deadline).then(() => 'late' as const);
    for (;;) {
      this.pump();
      const idle = this.queue.size === 0 && !this.admission.isWaiting;
      if ((await Promise.race([this.batcher.drain(), late])) === 'late') return false;
      if (idle) return true;
    }
  }

  /**
   * After ingest stopped: a reading waiting for queue space is queued rather than dropped, everything
   * queued is scored and decided (its alerts reach the alert stage, which stops next) unless the
   * deadline passes first; then the batch in flight finishes and the model sessions are released.
   * Readings left in the queue were never acknowledged at QoS 1: the broker delivers them again.
   */
  async stop(deadline: AbortSignal): Promise<void> {
    this.admission.cancelTimer();
    await this.drain(deadline);
    this.stopped = true;
    await this.batcher.drain();
    await this.batcher.release();
  }

  /** Moves readings from the queue into windows while the batcher has room. */
  private pump(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      while (this.batcher.canAccept()) {
        const reading = this.queue.poll();
        if (reading === undefined) break;
        // Silence is measured on the monotonic clock: a wall-clock step (NTP on a node without RTC) must
        // not make every stream stale at once.
        const outcome = this.windows.push(reading, reading.receivedAt);
        if (typeof outcome === 'number') {
          this.batcher.add(outcome);
          this.drift?.record(reading);
        } else if (outcome === 'filling') {
          this.drift?.record(reading);
        } else {
          this.hooks.onRejected(outcome, `ts ${reading.ts}`, reading.streamId);
          this.drift?.recordRejected(reading.streamId, outcome, reading.ts);
        }
        this.admission.retry();
      }
    } catch (err) {
      // A bug in windowing costs this reading, never the pipeline: pumping must not stay latched.
      this.hooks.onInternalError('window', err);
    } finally {
      this.pumping = false;
    }
  }

  private onScored(result: BatchResult): void {
    const { batch, output, scorer, inferenceSeconds } = result;
    const { metrics } = this;
    const now = performance.now();
    metrics.batchSize.observe(batch.size);
    metrics.inferenceDuration.observe(inferenceSeconds);
    metrics.windowsScored.inc(batch.size);
    for (let i = 0; i < batch.size; i++) metrics.ingestToDecision.observe((now - (batch.receivedAt[i] as number)) / 1000);
    const traced = this.hooks.tracer?.batch(this.batchInfo(result, now, false)) ?? null;
    if (traced === null) this.decisions.decideBatch(batch, output, scorer.manifest);
    else traced.decide(() => this.decisions.decideBatch(batch, output, scorer.manifest));
    metrics.alertsActive.set(this.decisions.activeAlerts);
    const top = this.topStreams;
    if (top !== null) for (let i = 0; i < batch.size; i++) top.offer(batch.streamIds[i] as string, output.scores[i] as number);
  }

  /** A finished model run as the tracer sees it (only called for a traced pipeline). */
  private batchInfo({ batch, scorer, inferenceSeconds }: BatchResult, endedAt: number, shadow: boolean): BatchInfo {
    let oldest = endedAt;
    for (let i = 0; i < batch.size; i++) oldest = Math.min(oldest, batch.receivedAt[i] as number);
    return {
      model: this.metrics.model,
      manifest: scorer.manifest,
      provider: scorer.provider,
      windows: batch.size,
      oldestReceivedAt: oldest,
      inferenceEndedAt: endedAt,
      inferenceSeconds,
      shadow,
    };
  }

  private onShadowScored(result: ShadowResult): void {
    this.hooks.tracer?.batch(this.batchInfo(result, performance.now(), true))?.end();
    // A new shadow model starts with no open alerts of its own (its state is its own, not the last one's).
    if (this.shadow === null || this.shadowModel !== result.scorer) {
      const before = this.shadow?.take();
      if (before !== undefined) this.foldShadow(before);
      this.shadowModel = result.scorer;
      this.shadow = new ShadowComparison(result.scorer.manifest, this.decisionOptions, (streamId) => this.decisions.isRaised(streamId), {
        onShadowAlert: (alert) =>
          this.log.info({ eventId: alert.eventId, type: alert.type, streamId: alert.streamId, score: alert.score, shadow: alert.model }, `shadow alert ${alert.type} (not published)`),
        onError: (err) => this.hooks.onInternalError('decide', err),
      });
    }
    this.shadow.compare(result);
  }

  private foldShadow(tally: ShadowTally): void {
    const { metrics } = this;
    if (tally.windows > 0) {
      metrics.shadowWindowsScored.inc(tally.windows);
      for (const o of comparisonOutcomes) {
        metrics.shadowScores[o].inc(tally.scores[o]);
        metrics.shadowDecisions[o].inc(tally.decisions[o]);
      }
    }
    for (const type of ['raised', 'resolved'] as const) if (tally.alerts[type] > 0) metrics.shadowAlerts[type].inc(tally.alerts[type]);
  }

  private onBatchFailed(batch: WindowBatch, err: Error): void {
    this.metrics.windowsFailed.inc(batch.size);
    this.log.error({ err: err.message, windows: batch.size }, 'inference run failed; its windows are not scored');
  }
}
