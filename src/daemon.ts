/**
 * The composition root: wires ingest → queue → windows → batches → model → decisions → alerts, owns
 * the lifecycle (start in data-path order, stop intake first and flush outputs last).
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Status } from './alert/alert.js';
import { AlertStage } from './alert/alert-stage.js';
import { MAX_TOPIC_BYTES } from './alert/publisher.js';
import { BrokerLink } from './broker/link.js';
import type { Config } from './config/schema.js';
import { MqttIngest, clientSource, inProcessSource } from './ingest/mqtt-ingest.js';
import { PayloadParser } from './ingest/payload.js';
import { StreamRateLimiter } from './ingest/rate-limit.js';
import { utf8Length } from './ingest/stream-id.js';
import { rejectReasons, type RejectReason } from './ingest/reading.js';
import { compileRule, type TopicRule } from './ingest/topic.js';
import { ModelWatcher } from './model/model-watcher.js';
import { loadModel, ModelError, swapIncompatibility, type LoadModelOptions, type Scorer } from './model/scorer.js';
import { RateLimitedWarner, type Logger } from './observe/log.js';
import { buildInfo } from './observe/build-info.js';
import { SentinelMetrics, type ModelSwapResult } from './observe/metrics.js';
import { Pipeline } from './pipeline/pipeline.js';
import { ProbeServer, type Readiness } from './observe/probe-server.js';


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

export class Daemon {
  readonly metrics: SentinelMetrics;
  private readonly warner: RateLimitedWarner;
  private readonly probes: ProbeServer;
  private scorer: Scorer | null = null;
  private pipeline: Pipeline | null = null;
  private alerts: AlertStage | null = null;
  private watcher: ModelWatcher | null = null;
  private ingest: MqttIngest | null = null;
  private limiter: StreamRateLimiter | null = null;
  private link: BrokerLink | null = null;
  private tasks: ScheduledTask[] = [];
  private stopping = false;
  private readonly connected = (): boolean => this.link?.connected ?? false;
  /** Until the broker answers the SUBSCRIBE, telemetry published now reaches no session: not ready yet. */
  private subscriptions: 'pending' | 'granted' | { refused: string } = 'pending';
  private readonly startedAt = new Date().toISOString();
  /** Per-message counts, by rule index (the last slot: no rule), folded into metrics on scrape. */
  private receivedTally = new Float64Array(0);
  private readonly rejectedBy = new Map<RejectReason, { inc(): void }>();
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
    // Every label a counter can take is exported from the start, so rate() sees the first increment
    // (SentinelMetrics does the same for the label values it owns).
    for (const reason of rejectReasons) this.metrics.readingsRejected.labels(reason).inc(0);
    for (const stage of internalStages) this.metrics.internalErrors.labels(stage).inc(0);
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
        version: buildInfo().version,
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

    this.pipeline = new Pipeline(scorer, config, log, this.warner, metrics, {
      onAlert: (alert) => this.alerts?.send(alert),
      onRejected: (reason, detail, streamId) => this.reject(reason, detail, streamId),
      onInternalError: (stage, err) => this.internalError(stage, err),
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
    for (const counter of receivedCounters) counter.inc(0);
    metrics.addCollector(() => {
      for (let i = 0; i < receivedCounters.length; i++) {
        const n = this.receivedTally[i] as number;
        if (n > 0) (receivedCounters[i] as { inc(n: number): void }).inc(n);
        this.receivedTally[i] = 0;
      }
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
      this.pipeline,
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
  async reloadModel(): Promise<ModelSwapResult> {
    const { log, metrics, config } = this;
    const current = this.scorer;
    const pipeline = this.pipeline;
    if (current === null || pipeline === null || this.stopping) return 'incomplete';
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
    pipeline.swapModel(next);
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

  private status(state: Status['state']): Status {
    const now = new Date().toISOString();
    return {
      state,
      version: buildInfo().version,
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
    add(schedule.sweep, 'sweep', () => this.sweep());
    add(schedule.modelPoll, 'model-poll', () => this.watcher?.check());
  }

  /** Marks stale streams (data gaps, not anomalies), evicts idle ones and forgets quiet streams' rate limits. */
  sweep(): void {
    this.pipeline?.sweep(performance.now());
    this.limiter?.prune(Date.now());
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
      streams: this.pipeline?.windows.size ?? 0,
      stale: this.pipeline?.windows.staleCount ?? 0,
      queueDepth: this.pipeline?.queued ?? 0,
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
    this.pipeline?.stopWaiting();
    this.watcher?.stop();
    for (const task of this.tasks) await task.stop();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.config.shutdown.graceMs);
    });
    const drained = await Promise.race([this.drain().then(() => true as const), expired]);
    clearTimeout(timer);
    if (!drained) this.log.error({ graceMs: this.config.shutdown.graceMs, queued: this.pipeline?.queued }, 'grace period ran out before the drain finished');
    await this.link?.stop(drained);
    this.alerts?.stop();
    if (this.pipeline) await this.pipeline.stop();
    else await this.scorer?.release();
    await this.probes.stop();
    this.log.info({ drained, ...(await this.totals()) }, 'stopped');
    return drained;
  }

  private async drain(): Promise<void> {
    if (!this.pipeline) return;
    await this.pipeline.drain();
    // Alerts the broker cannot take now are safe in the outbox: wait only while it is reachable.
    await Promise.race([this.alerts?.flush() ?? Promise.resolve(), this.link?.untilDisconnected() ?? Promise.resolve()]);
  }
}
