/**
 * The composition root: builds the stages (probes, model, broker link, alerts, pipeline, ingest, model
 * watcher, scheduler), wires each one's events to the next, and starts them in that order; they stop
 * in reverse, so intake stops first and the broker link disconnects after the last alert is flushed.
 */
import type { Status } from './alert/alert.js';
import type { DriftSnapshot } from './drift/snapshot.js';
import { ScoreApi } from './api/score-api.js';
import type { SparkplugRejectReason } from './ingest/sparkplug/host.js';
import type { SparkplugCountedEvent } from './ingest/sparkplug/sparkplug-ingest.js';
import { SparkplugStage } from './ingest/sparkplug/sparkplug-stage.js';
import type { Scorer } from './model/scorer.js';
import { AlertStage } from './alert/alert-stage.js';
import { MAX_TOPIC_BYTES } from './alert/publisher.js';
import { BrokerLink } from './broker/link.js';
import type { Config } from './config/schema.js';
import { MqttIngest, clientSource, inProcessSource } from './ingest/mqtt-ingest.js';
import { StreamRateLimiter } from './ingest/rate-limit.js';
import { utf8Length } from './ingest/stream-id.js';
import { rejectReasons, type RejectReason } from './ingest/reading.js';
import { compileSubscription, type Subscription } from './ingest/topic.js';
import { Scheduler, type Job } from './lifecycle/scheduler.js';
import { Stages } from './lifecycle/stage.js';
import { Route, type RouteHooks } from './route/route.js';
import { routeSpecs } from './route/routes.js';
import { RateLimitedWarner, type Logger } from './observe/log.js';
import { buildInfo } from './observe/build-info.js';
import { SentinelMetrics, type ModelSwapResult, type traceSpanOutcomes } from './observe/metrics.js';
import type { Tracing, TracingHooks } from './observe/tracing.js';
import type { Pipeline } from './pipeline/pipeline.js';
import { ProbeServer, type Readiness } from './observe/probe-server.js';
import { buildStatusSnapshot, OpenAlerts, StatusPage, type StatusSnapshot } from './observe/status-page.js';

/**
 * Compiles the subscription subscriptions; throws naming the config field on a bad template, or when an alert
 * or status topic could exceed the MQTT limit (an alert the broker can never take would be lost).
 */
export function compileRules(config: Config): Subscription[] {
  const { alert, ingest, nodeName } = config;
  if (utf8Length(alert.prefix) + 1 + ingest.maxStreamIdBytes > MAX_TOPIC_BYTES) {
    throw new Error(
      `alert.prefix: "<prefix>/<streamId>" can exceed the MQTT topic limit of ${MAX_TOPIC_BYTES} bytes with ingest.maxStreamIdBytes ${ingest.maxStreamIdBytes} — fix: shorten alert.prefix or lower ingest.maxStreamIdBytes`,
    );
  }
  if (utf8Length(config.drift.prefix) + 1 + ingest.maxStreamIdBytes > MAX_TOPIC_BYTES) {
    throw new Error(
      `drift.prefix: "<prefix>/<streamId>" can exceed the MQTT topic limit of ${MAX_TOPIC_BYTES} bytes with ingest.maxStreamIdBytes ${ingest.maxStreamIdBytes} — fix: shorten drift.prefix or lower ingest.maxStreamIdBytes`,
    );
  }
  const names = nodeName + alert.statusPrefix + alert.prefix + config.drift.prefix;
  if (utf8Length(alert.statusPrefix) + 1 + utf8Length(nodeName) > MAX_TOPIC_BYTES || names.includes('+') || names.includes('#') || names.includes('\u0000')) {
    throw new Error('alert.statusPrefix / nodeName: the status topic must be at most 65535 bytes, and no topic Sentinel publishes to (alert.prefix, alert.statusPrefix, drift.prefix, nodeName) may hold "+", "#" or NUL — fix: shorten them, or remove those characters');
  }
  return config.subscriptions.map((sub, i) => compileSubscription(sub, i));
}

/** Where an internal error was caught: the `stage` label of sentinel_internal_errors_total. */
export const internalStages = ['ingest', 'window', 'decide', 'alert', 'cron', 'model', 'http', 'broker', 'process'] as const;
export type InternalStage = (typeof internalStages)[number];

export class Daemon {
  readonly metrics: SentinelMetrics;
  private readonly warner: RateLimitedWarner;
  private readonly stages: Stages;
  private readonly probes: ProbeServer;
  /** One per model: its model stage, pipeline and watcher (see src/route/route.ts). */
  private readonly routes: Route[];
  /** The route of each subscription, by subscription index. */
  private readonly routeOf: Route[];
  private alerts: AlertStage | null = null;
  /** The routes' hooks: the tracer joins them in start() when tracing is on, before any pipeline is made. */
  private readonly routeHooks: RouteHooks;
  private tracing: Tracing | null = null;
  private limiter: StreamRateLimiter | null = null;
  private link: BrokerLink | null = null;
  private stopping = false;
  private readonly connected = (): boolean => this.link?.connected ?? false;
  /** Until the broker answers the SUBSCRIBE, telemetry published now reaches no session: not ready yet. */
  private subscribed: 'pending' | 'granted' | { refused: string } = 'pending';
  private readonly startedAt = new Date().toISOString();
  /** Per-message counts, by subscription index (the last slot: none), folded into metrics on scrape. */
  private receivedTally = new Float64Array(0);
  private readonly rejectedBy = new Map<RejectReason, { inc(): void }>();
  /** The open alerts the status page lists (fed with every decided alert). */
  private readonly openAlerts = new OpenAlerts(256);
  /** URL of the broker in use (the embedded one when none is configured). */
  brokerUrl = '';

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.metrics = new SentinelMetrics();
    this.warner = new RateLimitedWarner(log, config.log.rejectLogIntervalMs);
    this.stages = new Stages({ onStopError: (stage, err) => this.internalError('process', new Error(`stopping ${stage}: ${(err as Error).message ?? String(err)}`)) });
    const { http } = config;
    const statusPage = http.statusPage
      ? new StatusPage({
          maxClients: http.maxSseClients,
          intervalMs: http.statusIntervalMs,
          snapshot: (previous) => this.statusSnapshot(previous),
          onRejected: () => this.metrics.httpRejected.labels('client_limit').inc(),
          onError: (err) => this.internalError('http', err),
        })
      : undefined;
    this.probes = new ProbeServer(this.metrics.registry, () => this.readiness(), {
      host: http.host,
      port: http.port,
      startup: () => this.startup(),
      maxConnections: http.maxConnections,
      maxConnectionsPerClient: http.maxConnectionsPerClient,
      headersTimeoutMs: http.headersTimeoutMs,
      requestTimeoutMs: http.requestTimeoutMs,
      onRejected: (reason) => this.metrics.httpRejected.labels(reason).inc(),
      onError: (err) => this.internalError('http', err),
      ...(statusPage ? { statusPage } : {}),
    });
    const hooks: RouteHooks = (this.routeHooks = {
      onAlert: (alert) => {
        this.openAlerts.record(alert);
        this.alerts?.send(alert);
      },
      onRejected: (reason, detail, streamId) => this.reject(reason, detail, streamId),
      onDropped: (reason) => this.metrics.readingsDropped.labels(reason).inc(),
      onInternalError: (stage, err) => this.internalError(stage, err),
      onSwapped: () => void this.link?.publishStatus('online'),
      onDrift: (event) => this.link?.publishEvent(`${config.drift.prefix}/${event.streamId}`, event),
    });
    const specs = routeSpecs(config);
    this.routes = specs.map((spec) => new Route(spec, config, log, this.warner, this.metrics, hooks));
    this.routeOf = [];
    for (const route of this.routes) for (const index of route.spec.subscriptions) this.routeOf[index] = route;
    // Every label a counter can take is exported from the start, so rate() sees the first increment
    // (SentinelMetrics does the same for the label values it owns).
    for (const reason of rejectReasons) this.metrics.readingsRejected.labels(reason).inc(0);
    for (const stage of internalStages) this.metrics.internalErrors.labels(stage).inc(0);
  }

  /** The started stages, in start order (they stop in reverse). */
  get stageNames(): string[] {
    return this.stages.names;
  }

  /** Port the probe server listens on (useful when configured as 0). */
  get httpPort(): number {
    return this.probes.port;
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

  /** `model` and `provider` name the first route's model (all of a single-model node's); `models` lists every route's. */
  private modelDetail(): Record<string, unknown> {
    const first = this.routes[0]?.serving ?? null;
    return {
      model: first ? { name: first.manifest.name, version: first.manifest.version, warmedUp: true } : null,
      provider: first?.provider ?? null,
      models: this.routes.map((route) => {
        const model = route.serving;
        return model ? { model: route.name, name: model.manifest.name, version: model.manifest.version, provider: model.provider } : { model: route.name, loaded: false };
      }),
    };
  }

  private get modelsLoaded(): boolean {
    return this.routes.every((route) => route.serving !== null);
  }

  /** The startup probe: every model is loaded and warmed up; the broker plays no part (see docs/deploy.md). */
  startup(): Readiness {
    return { ready: this.modelsLoaded, detail: { version: buildInfo().version, ...this.modelDetail() } };
  }

  readiness(): Readiness {
    const ready = this.connected() && this.subscribed === 'granted' && this.modelsLoaded && !this.stopping;
    this.metrics.ready.set(ready ? 1 : 0);
    return {
      ready,
      detail: {
        version: buildInfo().version,
        broker: this.connected() ? 'connected' : 'disconnected',
        subscriptions: this.subscribed,
        ...this.modelDetail(),
        outbox: this.alerts === null ? null : this.alerts.journalError === null ? 'ok' : { degraded: this.alerts.journalError },
        stopping: this.stopping,
      },
    };
  }

  /**
   * Starts the stages in data-path order from the outputs back: probes, every route's model, broker
   * link, alerts, every route's pipeline, ingest, every route's model watcher, scheduler. A stage that
   * cannot start stops the ones before it.
   */
  async start(): Promise<void> {
    const { config, log, metrics, stages } = this;
    const subscriptions = compileRules(config);
    await stages.start(this.probes);
    log.info({ host: config.http.host, port: this.probes.port }, 'metrics and probes listening');
    if (config.tracing.enabled) {
      // Loaded only when on: a node without tracing never loads the OpenTelemetry SDK.
      const { Tracing } = await import('./observe/tracing.js');
      this.tracing = await stages.start(new Tracing(config.tracing, { nodeName: config.nodeName, version: buildInfo().version }, this.tracingHooks()));
      this.routeHooks.tracer = this.tracing;
      log.info({ endpoint: config.tracing.endpoint ?? 'from OTEL_EXPORTER_OTLP_* or http://localhost:4318/v1/traces', batchSampleRatio: config.tracing.batchSampleRatio }, 'tracing on');
    }
    for (const route of this.routes) await stages.start(route.model);

    const link = new BrokerLink(config, log, this.warner, metrics, (state) => this.status(state), {
      onConnected: (sessionPresent) => {
        // A broker that lost the session lost the subscriptions too: not ready until ingest's new SUBSCRIBE
        // is granted. (The embedded broker's telemetry does not go through this client's session.)
        if (!sessionPresent && this.subscribed === 'granted' && this.link?.embedded === null) this.subscribed = 'pending';
        this.readiness();
      },
      onDisconnected: () => this.readiness(),
    });
    this.link = link;
    await stages.start(link);
    this.brokerUrl = link.url;

    const alerts = new AlertStage(config, log, this.warner, metrics, link, this.tracing ?? undefined);
    this.alerts = alerts;
    await stages.start(alerts);

    for (const route of this.routes) await stages.start(route.pipeline());
    // After the pipelines, so that it stops (answering 503, finishing its run) before they release the models.
    if (config.api.enabled) {
      const routes = this.routes;
      const api = new ScoreApi(
        config.api,
        metrics.registry,
        log.child({ stage: 'api' }),
        { models: () => routes.map((r) => ({ name: r.name, scorer: r.serving, provider: r.serving?.provider })) },
        { maxBatch: config.batch.maxSize },
      );
      await stages.start(api);
      log.info({ host: config.api.host, port: api.port }, 'scoring API listening');
    }
    await stages.start(this.ingestFor(subscriptions, link));
    if (config.sparkplug.enabled) await stages.start(this.sparkplugStage());
    for (const route of this.routes) {
      await stages.start(route.watcher);
      await stages.start(route.candidateWatcher);
    }
    await stages.start(new Scheduler(this.jobs(), (_job, err) => this.internalError('cron', err)));
  }

  private tracingHooks(): TracingHooks {
    const spans = (outcome: (typeof traceSpanOutcomes)[number]) => this.metrics.traceSpans.labels(outcome);
    const [ended, exported, failed] = [spans('ended'), spans('exported'), spans('export_failed')];
    return {
      onEnded: (count) => ended.inc(count),
      onExported: (count, ok, error) => {
        (ok ? exported : failed).inc(count);
        if (!ok) this.warner.warn('trace-export', { spans: count, err: error?.message ?? 'export failed' }, 'trace export failed: its spans are lost (the data path is not affected)');
      },
    };
  }

  /** The Sparkplug B host, feeding the route of `sparkplug.model` (see src/ingest/sparkplug/). */
  private sparkplugStage(): SparkplugStage {
    const { config, metrics } = this;
    const name = config.sparkplug.model ?? config.model.name;
    const route = this.routes.find((r) => r.name === name) as Route;
    const rejected = (reason: SparkplugRejectReason) => metrics.sparkplugRejected.labels(reason);
    const events = (event: SparkplugCountedEvent) => metrics.sparkplugEvents.labels(event);
    const stage = new SparkplugStage(
      config,
      () => ({ sink: route.pipeline(), channels: (route.serving as Scorer).manifest.channels }),
      {
        onRejected: (reason, detail) => {
          rejected(reason).inc();
          this.warner.warn(`sparkplug:${reason}`, { reason, detail: detail.slice(0, 300) }, 'rejected Sparkplug input');
        },
        onStale: (streamId) => route.running?.markStale(streamId),
        onRebirthRequested: (node, cause) => this.log.info({ group: node.group, edgeNode: node.edgeNode, cause }, 'Sparkplug rebirth requested'),
        counters: { inc: (event, count) => events(event).inc(count) },
        onSubscribeFailed: (err) => this.log.error({ err: err.message }, 'the broker refused a Sparkplug subscription: check its ACL for this client'),
        onError: (err) => this.internalError('ingest', err),
      },
      this.log.child({ stage: 'sparkplug' }),
    );
    metrics.addCollector(() => {
      const host = stage.host;
      if (host !== null) metrics.sparkplugEdgeNodes.set(host.edgeNodeCount);
    });
    return stage;
  }

  private ingestFor(subscriptions: Subscription[], link: BrokerLink): MqttIngest {
    const { config, log, metrics } = this;
    this.receivedTally = new Float64Array(subscriptions.length + 1);
    const receivedCounters = [...subscriptions.map((r) => metrics.messagesReceived.labels(r.filter)), metrics.messagesReceived.labels('none')];
    for (const counter of receivedCounters) counter.inc(0);
    metrics.addCollector(() => {
      for (let i = 0; i < receivedCounters.length; i++) {
        const n = this.receivedTally[i] as number;
        if (n > 0) (receivedCounters[i] as { inc(n: number): void }).inc(n);
        this.receivedTally[i] = 0;
      }
    });
    const targets = subscriptions.map((subscription) => {
      const route = this.routeOf[subscription.index] as Route;
      return { parser: route.parser(), sink: route.pipeline() };
    });
    const perSecond = config.ingest.maxReadingsPerSecondPerStream;
    // Buckets live about a second after a stream's last reading, so this bounds memory, not streams.
    const limiter = perSecond > 0 ? new StreamRateLimiter(perSecond, Math.min(2 * config.window.maxStreams, 65_536)) : null;
    this.limiter = limiter;
    // With the embedded broker, telemetry comes straight from its router; the client still carries
    // status and alerts.
    return new MqttIngest(
      link.embedded ? inProcessSource(link.embedded) : clientSource(link.client),
      subscriptions,
      targets,
      {
        onReceived: (subscription) => {
          const slot = subscription === null ? subscriptions.length : subscription.index;
          this.receivedTally[slot] = (this.receivedTally[slot] as number) + 1;
        },
        onRejected: (reason, detail, t) => this.reject(reason, detail, t),
        // After stop, QoS 1 readings are left unacknowledged for the broker to deliver again; QoS 0 ones are lost.
        onRefused: (qos) => {
          if (qos === 0) metrics.readingsDropped.labels('shutdown').inc();
        },
        onRateLimitWait: () => metrics.rateLimitWaits.inc(),
        onError: (err) => this.internalError('ingest', err),
        onSubscribed: () => {
          this.subscribed = 'granted';
          this.readiness();
          log.info({ filters: subscriptions.map((r) => r.filter) }, 'subscribed');
        },
        onSubscribeFailed: (err) => {
          this.subscribed = { refused: err.message };
          this.readiness();
          log.error({ filters: subscriptions.map((r) => r.filter), err: err.message }, 'the broker refused a subscription: check its ACL for this client');
        },
      },
      limiter,
      { maxTopicBytes: config.ingest.maxTopicBytes, maxStreamIdBytes: config.ingest.maxStreamIdBytes },
    );
  }

  /**
   * Loads every route's model file again (SIGHUP) and swaps in each new valid version that fits its
   * running pipeline; a route whose file is unchanged, or refused, keeps its model. Returns the worst
   * result: refused, then incomplete, then swapped.
   */
  async reloadModel(): Promise<ModelSwapResult> {
    if (this.stopping) return 'incomplete';
    const results = await Promise.all(this.routes.map((route) => route.reload()));
    return results.includes('refused') ? 'refused' : results.includes('incomplete') ? 'incomplete' : 'swapped';
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
    const model = this.routes[0]?.serving ?? null;
    return {
      state,
      version: buildInfo().version,
      nodeName: this.config.nodeName,
      clientId: this.config.broker.clientId,
      model: model ? { name: model.manifest.name, version: model.manifest.version } : null,
      provider: model?.provider ?? null,
      models: this.routes.flatMap((route) => {
        const serving = route.serving;
        return serving ? [{ model: route.name, name: serving.manifest.name, version: serving.manifest.version, provider: serving.provider }] : [];
      }),
      ...(this.config.drift.enabled ? { drift: this.driftSnapshots() } : {}),
      startedAt: this.startedAt,
      updatedAt: now,
    };
  }

  /** The status page's snapshot (once per tick, see docs/status-page.md). */
  private async statusSnapshot(previous: StatusSnapshot | null): Promise<StatusSnapshot> {
    const { config } = this;
    // get() folds the hot-path tallies in first, as a scrape does.
    const values = async (name: string) => (await this.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    const total = (list: Array<{ value: number; labels: Record<string, string | number | undefined> }>, label?: string, value?: string): number =>
      list.reduce((sum, v) => (label === undefined || v.labels[label] === value ? sum + v.value : sum), 0);
    const alerts = await values('sentinel_alerts_total');
    const rejects: Record<string, number> = {};
    for (const v of await values('sentinel_readings_rejected_total')) rejects[String(v.labels.reason)] = (rejects[String(v.labels.reason)] ?? 0) + v.value;
    return buildStatusSnapshot(
      {
        version: buildInfo().version,
        nodeName: config.nodeName,
        startedAt: this.startedAt,
        brokerConnected: this.connected(),
        models: this.routes.map((route) => {
          const s = route.serving;
          const { policy } = s?.manifest ?? {};
          return {
            model: route.name,
            loaded: s !== null,
            name: s?.manifest.name ?? null,
            version: s?.manifest.version ?? null,
            provider: s?.provider ?? null,
            raiseThreshold: policy?.raiseThreshold ?? null,
            clearThreshold: policy?.clearThreshold ?? null,
          };
        }),
        queue: { depth: this.sum((p) => p.queued), capacity: config.queue.capacity * this.routes.length },
        counters: {
          received: total(await values('sentinel_messages_received_total')),
          scored: total(await values('sentinel_windows_scored_total')),
          raised: total(alerts, 'type', 'raised'),
          resolved: total(alerts, 'type', 'resolved'),
          dropped: total(await values('sentinel_readings_dropped_total')),
        },
        rejects,
        openAlerts: this.sum((p) => p.openAlerts),
        alerts: this.openAlerts.list(),
        scored: this.routes.flatMap((route) => route.running?.takeTopStreams(config.http.statusTopStreams) ?? []),
        drift: config.drift.enabled ? this.driftSnapshots() : {},
        topStreams: config.http.statusTopStreams,
      },
      previous,
    );
  }

  /** Each running route's drift snapshot, by model name. */
  private driftSnapshots(): Record<string, DriftSnapshot> {
    const out: Record<string, DriftSnapshot> = {};
    for (const route of this.routes) {
      const snapshot = route.running?.driftSnapshot();
      if (snapshot) out[route.name] = snapshot;
    }
    return out;
  }

  private jobs(): Job[] {
    const { schedule } = this.config;
    return [
      { name: 'heartbeat', cron: schedule.heartbeat, run: () => this.link?.publishStatus('online') },
      { name: 'summary', cron: schedule.summary, run: () => this.logSummary() },
      { name: 'sweep', cron: schedule.sweep, run: () => this.sweep() },
      // The same check the folder watcher runs, for volumes whose changes fs.watch misses.
      { name: 'model-poll', cron: schedule.modelPoll, run: () => Promise.all(this.routes.flatMap((route) => [route.watcher.check(), route.candidateWatcher.check()])) },
    ];
  }

  /** Marks stale streams (a data gap, not an anomaly), evicts idle ones and forgets quiet streams' rate limits. */
  sweep(): void {
    const now = performance.now();
    for (const route of this.routes) route.running?.sweep(now);
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
      streams: this.sum((pipeline) => pipeline.windows.size),
      stale: this.sum((pipeline) => pipeline.windows.staleCount),
      queueDepth: this.sum((pipeline) => pipeline.queued),
      broker: this.connected() ? 'connected' : 'disconnected',
    };
  }

  private sum(of: (pipeline: Pipeline) => number): number {
    let total = 0;
    for (const route of this.routes) if (route.running !== null) total += of(route.running);
    return total;
  }

  private async logSummary(): Promise<void> {
    const drifting = this.config.drift.enabled ? Object.entries(this.driftSnapshots()).filter(([, s]) => s.bands.moderate + s.bands.severe + s.quality.poor > 0) : [];
    // The most drifting streams only while some stream is out of its bands: a quiet node logs a short line.
    const drift = drifting.length > 0 ? { drift: Object.fromEntries(drifting.map(([model, s]) => [model, { bands: s.bands, quality: s.quality, top: s.top }])) } : {};
    this.log.info({ ...(await this.totals()), ...drift }, 'summary');
  }

  /**
   * Graceful stop: the stages stop in reverse order — scheduler, watcher, ingest (intake stops), pipeline
   * (drains through scoring and decisions), alerts (flushed), broker link (offline status, disconnect),
   * model, probes — within shutdown.graceMs for the drain. Resolves false if the grace period ran out first.
   */
  async stop(): Promise<boolean> {
    if (this.stopping) return true;
    this.stopping = true;
    for (const route of this.routes) route.stopReloads();
    this.metrics.ready.set(0);
    const grace = new AbortController();
    const timer = setTimeout(() => grace.abort(), this.config.shutdown.graceMs);
    const late = await this.stages.stop(grace.signal);
    clearTimeout(timer);
    const drained = !this.routes.some((route) => route.running !== null && late.has(route.running.name)) && !late.has('alerts');
    if (!drained) this.log.error({ graceMs: this.config.shutdown.graceMs, queued: this.sum((pipeline) => pipeline.queued) }, 'grace period ran out before the drain finished');
    this.log.info({ drained, ...(await this.totals()) }, 'stopped');
    return drained;
  }
}
