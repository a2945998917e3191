/**
 * The composition root: wires ingest → queue → windows → batches → model → decisions → alerts, owns
 * the lifecycle (start in data-path order, stop intake first and flush outputs last).
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Status } from './alert/alert.js';
import { AlertStage } from './alert/alert-stage.js';
import { MAX_TOPIC_BYTES } from './alert/publisher.js';
import { BrokerLink } from './broker/link.js';
import { QueueAdmission, type Backlog } from './queue/admission.js';
import { BoundedQueue } from './queue/bounded-queue.js';
import { MicroBatcher, type BatchResult, type WindowBatch } from './batch/micro-batcher.js';
import type { Config } from './config/schema.js';
import { DecisionStage } from './decide/decision-stage.js';
import { MqttIngest, clientSource, inProcessSource, type ReadingSink } from './ingest/mqtt-ingest.js';
import { PayloadParser } from './ingest/payload.js';
import { StreamRateLimiter } from './ingest/rate-limit.js';
import { utf8Length } from './ingest/stream-id.js';
import { rejectReasons, type Reading, type RejectReason } from './ingest/reading.js';
import { compileRule, type TopicRule } from './ingest/topic.js';
import { ModelWatcher } from './model/model-watcher.js';
import { loadModel, ModelError, swapIncompatibility, type LoadModelOptions, type Scorer } from './model/scorer.js';
import { RateLimitedWarner, type Logger } from './observe/log.js';
import { SentinelMetrics } from './observe/metrics.js';
import { ProbeServer, type Readiness } from './observe/probe-server.js';
import { WindowStore } from './window/window-store.js';


/**
 * Compiles the subscription rules; throws naming the config field on a bad template, or when an alert
 * or status topic could exceed the MQTT limit (an alert the broker can never take would be lost).
 */
export function compileRules(config: Config): TopicRule[] {
  const { alert, ingest, nodeName } = config;
  if (utf8Length(alert.prefix) + 1 + ingest.maxStreamIdBytes > MAX_TOPIC_BYTES) {
    throw new Error(
      `alert.prefix: "<prefix>/<streamId>" can exceed the MQTT topic limit of ${MAX_TOPIC_BYTES} bytes with ingest.maxStreamIdBytes ${ingest.maxStreamIdBytes} — fix: shorten alert.prefix or lower ingest.maxStreamIdBytes`,
    );
  }
  const names = nodeName + alert.statusPrefix + alert.prefix;
  if (utf8Length(alert.statusPrefix) + 1 + utf8Length(nodeName) > MAX_TOPIC_BYTES || names.includes('+') || names.includes('#') || names.includes('\u0000')) {
    throw new Error('alert.statusPrefix / nodeName: the status topic must be at most 65535 bytes with no "+", "#" or NUL — fix: shorten them, or remove those characters');
  }
  return config.subscriptions.map((sub, i) => compileRule(sub, i));
}

/** Where an internal error was caught: the `stage` label of sentinel_internal_errors_total. */
export const internalStages = ['ingest', 'window', 'decide', 'alert', 'cron', 'model', 'http', 'broker', 'process'] as const;
export type InternalStage = (typeof internalStages)[number];

export class Daemon implements ReadingSink {
  readonly metrics: SentinelMetrics;
  private readonly warner: RateLimitedWarner;
  private readonly probes: ProbeServer;
  private scorer: Scorer | null = null;
  private queue!: BoundedQueue<Reading>;
  private windows!: WindowStore;
  private batcher!: MicroBatcher;
  private decisions!: DecisionStage;
  private alerts: AlertStage | null = null;
  private watcher: ModelWatcher | null = null;
  private ingest: MqttIngest | null = null;
  private limiter: StreamRateLimiter | null = null;
  private link: BrokerLink | null = null;
  private tasks: ScheduledTask[] = [];
  private admission!: QueueAdmission<Reading>;
  private pumping = false;
  private stopping = false;
  private readonly connected = (): boolean => this.link?.connected ?? false;
  /** Until the broker answers the SUBSCRIBE, telemetry published now reaches no session: not ready yet. */
  private subscriptions: 'pending' | 'granted' | { refused: string } = 'pending';
  private readonly startedAt = new Date().toISOString();
  /** Per-message counts, by rule index (the last slot: no rule), folded into metrics on scrape. */
  private receivedTally = new Float64Array(0);
  private queuedTally = 0;
  private readonly rejectedBy = new Map<RejectReason, { inc(): void }>();
  private droppedNewest: { inc(): void } | null = null;
  private droppedOldest: { inc(): void } | null = null;
  private clockStepsSeen = 0;
  private evictedForRoomSeen = 0;
  /** Port the probe server listens on (useful when configured as 0). */
  httpPort = 0;
  /** URL of the broker in use (the embedded one when none is configured). */
  brokerUrl = '';

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.metrics = new SentinelMetrics();
    this.warner = new RateLimitedWarner(log, config.log.rejectLogIntervalMs);
    const { http } = config;
    this.probes = new ProbeServer(this.metrics.registry, () => this.readiness(), {
      maxConnections: http.maxConnections,
      maxConnectionsPerClient: http.maxConnectionsPerClient,
      headersTimeoutMs: http.headersTimeoutMs,
      requestTimeoutMs: http.requestTimeoutMs,
      onRejected: (reason) => this.metrics.httpRejected.labels(reason).inc(),
      onError: (err) => this.internalError('http', err),
    });
    // Every label a counter can take is exported from the start, so rate() sees the first increment.
    for (const reason of rejectReasons) this.metrics.readingsRejected.labels(reason).inc(0);
    for (const stage of internalStages) this.metrics.internalErrors.labels(stage).inc(0);
    for (const reason of ['idle', 'table_full']) this.metrics.streamsEvicted.labels(reason).inc(0);
  }

  /**
   * A bug caught at a stage boundary: counted and logged (rate-limited), never the end of the process.
   * The attack tests assert this stays at 0.
   */
  internalError(stage: InternalStage, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.metrics.internalErrors.labels(stage).inc();
      this.warner.warn(`internal:${stage}`, { stage, err: error.message, stack: error.stack }, 'internal error caught at a stage boundary (please report it)');
    } catch {
      // Counting failed too: nothing safer is left to do than carry on.
    }
  }

  readiness(): Readiness {
    const ready = this.connected() && this.subscriptions === 'granted' && this.scorer !== null && !this.stopping;
    this.metrics.ready.set(ready ? 1 : 0);
    return {
      ready,
      detail: {
        broker: this.connected() ? 'connected' : 'disconnected',
        subscriptions: this.subscriptions,
        model: this.scorer ? { name: this.scorer.manifest.name, version: this.scorer.manifest.version, warmedUp: true } : null,
        provider: this.scorer?.provider ?? null,
        outbox: this.alerts === null ? null : this.alerts.journalError === null ? 'ok' : { degraded: this.alerts.journalError },
        stopping: this.stopping,
      },
    };
  }

  private loadOptions(): LoadModelOptions {
    const { config, log } = this;
    return {
      executionProviders: config.model.executionProviders,
      intraOpThreads: config.model.intraOpThreads,
      warmupRuns: config.model.warmupRuns,
      maxBatch: config.batch.maxSize,
      onFallback: (provider, err) =>
        log.warn({ provider, err: err.message }, `execution provider ${provider} unavailable, falling back to the next one`),
    };
  }

  async start(): Promise<void> {
    const { config, log, metrics } = this;
    const rules = compileRules(config);
    this.httpPort = await this.probes.start(config.http.host, config.http.port);
    log.info({ host: config.http.host, port: this.httpPort }, 'metrics and probes listening');

    const scorer = await loadModel(config.model.path, this.loadOptions());
    this.scorer = scorer;
    const { manifest } = scorer;
    metrics.setModel(manifest.name, manifest.version, scorer.provider);
    log.info(
      { model: manifest.name, version: manifest.version, provider: scorer.provider, window: manifest.window, channels: manifest.channels },
      'model loaded and warmed up',
    );

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
      onDropped: (policy) =>
        policy === 'drop-newest'
          ? (this.droppedNewest ??= metrics.readingsDropped.labels('queue_full_drop_newest')).inc()
          : (this.droppedOldest ??= metrics.readingsDropped.labels('queue_full_drop_oldest')).inc(),
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
      // Only stale streams make room, and a stale stream's alert was closed when it went stale.
      onEvicted: (streamId) => this.decisions.forget(streamId),
    });
    this.decisions = new DecisionStage(
      manifest,
      { nodeName: config.nodeName, topChannels: config.alert.topChannels },
      {
        onAlert: (alert) => this.alerts?.send(alert),
        onSaturated: () => this.metrics.scoresSaturated.inc(),
        onError: (err) => this.internalError('decide', err),
      },
    );
    this.batcher = new MicroBatcher(scorer, this.windows, config.batch, {
      onScored: (result) => this.onScored(result),
      onFailed: (batch, err) => this.onBatchFailed(batch, err),
      onCapacity: () => this.pump(),
      onError: (err) => this.internalError('decide', err),
    });

    this.alerts = new AlertStage(config, log, this.warner, metrics);
    this.alerts.start();

    this.link = new BrokerLink(config, log, this.warner, metrics, (state) => this.status(state), {
      onConnected: (sessionPresent) => {
        // A broker that lost the session lost the subscriptions too: not ready until ingest's new SUBSCRIBE
        // is granted. (The embedded broker's telemetry does not go through this client's session.)
        if (!sessionPresent && this.subscriptions === 'granted' && this.link?.embedded === null) this.subscriptions = 'pending';
        this.readiness();
      },
      onDisconnected: () => this.readiness(),
    });
    const client = await this.link.start();
    this.brokerUrl = this.link.url;
    this.alerts.attach(client);
    this.receivedTally = new Float64Array(rules.length + 1);
    const receivedCounters = [...rules.map((r) => metrics.messagesReceived.labels(r.filter)), metrics.messagesReceived.labels('none')];
    metrics.addCollector(() => {
      for (let i = 0; i < receivedCounters.length; i++) {
        const n = this.receivedTally[i] as number;
        if (n > 0) (receivedCounters[i] as { inc(n: number): void }).inc(n);
        this.receivedTally[i] = 0;
      }
      if (this.queuedTally > 0) metrics.readingsQueued.inc(this.queuedTally);
      this.queuedTally = 0;
      metrics.queueDepth.set(this.queue.size);
      const windows = this.windows;
      if (windows.clockSteps > this.clockStepsSeen) metrics.clockSteps.inc(windows.clockSteps - this.clockStepsSeen);
      this.clockStepsSeen = windows.clockSteps;
      if (windows.evictedForRoom > this.evictedForRoomSeen) metrics.streamsEvicted.labels('table_full').inc(windows.evictedForRoom - this.evictedForRoomSeen);
      this.evictedForRoomSeen = windows.evictedForRoom;
    });
    const parser = new PayloadParser(manifest.channels, config.ingest.maxPayloadBytes, config.ingest.maxFutureSkewMs);
    const perSecond = config.ingest.maxReadingsPerSecondPerStream;
    // Buckets live about a second after a stream's last reading, so this bounds memory, not streams.
    const limiter = perSecond > 0 ? new StreamRateLimiter(perSecond, Math.min(2 * config.window.maxStreams, 65_536)) : null;
    this.limiter = limiter;
    // With the embedded broker, telemetry comes straight from its router; the client still carries
    // status and alerts.
    this.ingest = new MqttIngest(
      this.link.embedded ? inProcessSource(this.link.embedded) : clientSource(client),
      rules,
      parser,
      this,
      {
        onReceived: (rule) => {
          const slot = rule === null ? rules.length : rule.index;
          this.receivedTally[slot] = (this.receivedTally[slot] as number) + 1;
        },
        onRejected: (reason, detail, t) => this.reject(reason, detail, t),
        onRefused: (qos) => {
          if (qos === 0) metrics.readingsDropped.labels('shutdown').inc();
        },
        onRateLimitWait: () => metrics.rateLimitWaits.inc(),
        onError: (err) => this.internalError('ingest', err),
        onSubscribed: () => {
          this.subscriptions = 'granted';
          this.readiness();
          log.info({ filters: rules.map((r) => r.filter) }, 'subscribed');
        },
        onSubscribeFailed: (err) => {
          this.subscriptions = { refused: err.message };
          this.readiness();
          log.error({ filters: rules.map((r) => r.filter), err: err.message }, 'the broker refused a subscription: check its ACL for this client');
        },
      },
      limiter,
      { maxTopicBytes: config.ingest.maxTopicBytes, maxStreamIdBytes: config.ingest.maxStreamIdBytes },
    );
    this.ingest.start();
    this.watcher = new ModelWatcher(config.model.path, {
      currentVersion: () => this.scorer?.manifest.version ?? '',
      reload: () => this.reloadModel(),
      onError: (err) => this.internalError('model', err),
    });
    this.watcher.start(config.model.watch);
    this.schedule();
  }

  /**
   * Loads the model file again and, if it is a new valid model that fits the running pipeline (same
   * window, channels and normalisation), swaps it in between two batches; the old one keeps serving
   * otherwise.
   */
  async reloadModel(): Promise<'swapped' | 'refused' | 'incomplete'> {
    const { log, metrics, config } = this;
    const current = this.scorer;
    if (current === null || this.stopping) return 'incomplete';
    let next: Scorer;
    try {
      next = await loadModel(config.model.path, this.loadOptions());
    } catch (err) {
      const result = err instanceof ModelError && err.kind === 'incomplete' ? 'incomplete' : 'refused';
      metrics.modelSwaps.labels(result).inc();
      this.warner.warn(`model-${result}`, { err: (err as Error).message }, result === 'refused' ? 'new model refused; the old one keeps serving' : 'new model not readable yet; will retry');
      return result;
    }
    if (next.manifest.version === current.manifest.version) {
      await next.release();
      return 'swapped';
    }
    const problem = swapIncompatibility(current.manifest, next.manifest);
    if (problem !== null || this.stopping) {
      await next.release();
      if (problem === null) return 'incomplete';
      metrics.modelSwaps.labels('refused').inc();
      log.warn({ model: next.manifest.name, version: next.manifest.version, problem }, 'new model refused: it does not fit the running pipeline (restart to change shape); the old one keeps serving');
      return 'refused';
    }
    // Batches already scored by the old model are still judged by its policy (DecisionStage takes it per batch).
    this.batcher.swapScorer(next);
    this.scorer = next;
    metrics.setModel(next.manifest.name, next.manifest.version, next.provider);
    metrics.modelSwaps.labels('swapped').inc();
    log.info({ from: current.manifest.version, to: next.manifest.version, model: next.manifest.name, provider: next.provider }, 'model swapped');
    void this.link?.publishStatus('online');
    return 'swapped';
  }

  private counterFor<K>(cache: Map<K, { inc(): void }>, key: K, make: () => { inc(): void }): { inc(): void } {
    let counter = cache.get(key);
    if (counter === undefined) {
      counter = make();
      cache.set(key, counter);
    }
    return counter;
  }

  private reject(reason: RejectReason, detail: string, where: string): void {
    this.counterFor(this.rejectedBy, reason, () => this.metrics.readingsRejected.labels(reason)).inc();
    this.warner.warn(`reject:${reason}`, { reason, detail: detail.slice(0, 300), where: where.slice(0, 200) }, 'rejected bad input');
  }

  /** ReadingSink: queue the reading; a full queue makes it wait (QoS 1, and QoS 0 briefly) or drops it (QoS 0). */
  offer(reading: Reading, qos: 0 | 1, ack: () => void): void {
    this.admission.offer(reading, qos, ack);
    this.pump();
  }

  /** Moves readings from the queue into windows while the batcher has room. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.batcher.canAccept()) {
        const reading = this.queue.poll();
        if (reading === undefined) break;
        // Silence is measured on the monotonic clock: a wall-clock step (NTP on a node without RTC) must
        // not make every stream stale at once.
        const outcome = this.windows.push(reading, reading.receivedAt);
        if (typeof outcome === 'number') this.batcher.add(outcome);
        else if (outcome !== 'filling') this.reject(outcome, `ts ${reading.ts}`, reading.streamId);
        this.admission.retry();
      }
    } catch (err) {
      // A bug in windowing costs this reading, never the pipeline: pumping must not stay latched.
      this.internalError('window', err);
    } finally {
      this.pumping = false;
    }
  }

  private onScored({ batch, output, scorer, inferenceSeconds }: BatchResult): void {
    const { metrics } = this;
    const now = performance.now();
    metrics.batchSize.observe(batch.size);
    metrics.inferenceDuration.observe(inferenceSeconds);
    metrics.windowsScored.inc(batch.size);
    for (let i = 0; i < batch.size; i++) metrics.ingestToDecision.observe((now - (batch.receivedAt[i] as number)) / 1000);
    this.decisions.decideBatch(batch, output, scorer.manifest);
    metrics.alertsActive.set(this.decisions.activeAlerts);
  }

  private onBatchFailed(batch: WindowBatch, err: Error): void {
    this.metrics.windowsFailed.inc(batch.size);
    this.log.error({ err: err.message, windows: batch.size }, 'inference run failed; its windows are not scored');
  }

  private status(state: Status['state']): Status {
    const now = new Date().toISOString();
    return {
      state,
      nodeName: this.config.nodeName,
      clientId: this.config.broker.clientId,
      model: this.scorer ? { name: this.scorer.manifest.name, version: this.scorer.manifest.version } : null,
      provider: this.scorer?.provider ?? null,
      startedAt: this.startedAt,
      updatedAt: now,
    };
  }

  private schedule(): void {
    const { schedule } = this.config;
    // A job that throws or rejects is counted, never left to reach the top level.
    const add = (expression: string, name: string, job: () => unknown): void => {
      const guarded = async (): Promise<void> => {
        try {
          await job();
        } catch (err) {
          this.internalError('cron', err);
        }
      };
      this.tasks.push(cron.schedule(expression, guarded, { name, noOverlap: true }));
    };
    add(schedule.heartbeat, 'heartbeat', () => this.link?.publishStatus('online'));
    add(schedule.summary, 'summary', () => this.logSummary());
    add(schedule.staleCheck, 'stale-check', () => this.sweep());
    add(schedule.modelPoll, 'model-poll', () => this.watcher?.check());
  }

  /** Marks stale streams (data gaps, not anomalies), evicts idle ones and forgets quiet streams' rate limits. */
  sweep(): void {
    const { becameStale, evicted } = this.windows.sweep(performance.now());
    const model = this.batcher.currentScorer.manifest;
    for (const streamId of becameStale) this.decisions.closeSilent(streamId, 'stale', this.windows.lastTsOf(streamId) ?? Date.now(), model);
    for (const streamId of evicted) this.decisions.closeSilent(streamId, 'evicted', Date.now(), model);
    this.limiter?.prune(Date.now());
    if (becameStale.length > 0) {
      this.metrics.dataGaps.inc(becameStale.length);
      this.warner.warn('stale', { streams: becameStale.slice(0, 20), count: becameStale.length }, 'streams went silent (data gap)');
    }
    if (evicted.length > 0) this.metrics.streamsEvicted.labels('idle').inc(evicted.length);
    this.metrics.streamsActive.set(this.windows.size);
    this.metrics.streamsStale.set(this.windows.staleCount);
    this.metrics.alertsActive.set(this.decisions.activeAlerts);
  }

  /** Totals since start, for the periodic summary line and the last line on stop. */
  async totals(): Promise<Record<string, number | string>> {
    const value = async (name: string): Promise<number> => {
      const metric = await this.metrics.registry.getSingleMetric(name)?.get();
      return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
    };
    return {
      received: await value('sentinel_messages_received_total'),
      rejected: await value('sentinel_readings_rejected_total'),
      dropped: await value('sentinel_readings_dropped_total'),
      queued: await value('sentinel_readings_queued_total'),
      scored: await value('sentinel_windows_scored_total'),
      alerts: await value('sentinel_alerts_total'),
      streams: this.windows?.size ?? 0,
      stale: this.windows?.staleCount ?? 0,
      queueDepth: this.queue?.size ?? 0,
      broker: this.connected() ? 'connected' : 'disconnected',
    };
  }

  private async logSummary(): Promise<void> {
    this.log.info(await this.totals(), 'summary');
  }

  /**
   * Graceful stop: stop intake, drain the queue through scoring and decisions, flush alerts,
   * publish offline status, disconnect. Resolves false if the grace period ran out first.
   */
  async stop(): Promise<boolean> {
    if (this.stopping) return true;
    this.stopping = true;
    this.metrics.ready.set(0);
    this.ingest?.stopIntake();
    // A reading waiting for space is queued by the drain, not dropped.
    this.admission?.cancelTimer();
    this.watcher?.stop();
    for (const task of this.tasks) await task.stop();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.config.shutdown.graceMs);
    });
    const drained = await Promise.race([this.drain().then(() => true as const), expired]);
    clearTimeout(timer);
    if (!drained) this.log.error({ graceMs: this.config.shutdown.graceMs, queued: this.queue?.size }, 'grace period ran out before the drain finished');
    await this.link?.stop(drained);
    this.alerts?.stop();
    if (this.batcher) {
      await this.batcher.drain();
      await this.batcher.release();
    } else await this.scorer?.release();
    await this.probes.stop();
    this.log.info({ drained, ...(await this.totals()) }, 'stopped');
    return drained;
  }

  private async drain(): Promise<void> {
    if (!this.batcher) return;
    for (;;) {
      this.pump();
      if (this.queue.size === 0 && !this.admission.isWaiting) break;
      await this.batcher.drain();
    }
    await this.batcher.drain();
    // Alerts the broker cannot take now are safe in the outbox: wait only while it is reachable.
    await Promise.race([this.alerts?.flush() ?? Promise.resolve(), this.link?.untilDisconnected() ?? Promise.resolve()]);
  }
}
