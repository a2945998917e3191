/**
 * A route: one model and the subscriptions that name it. Each route has its own model stage (load,
 * hot swap, refusal rules), pipeline (queue, windows, batches, decisions), model watcher and `model`
 * metric label; a stream belongs to exactly one route, the one of the first subscription its topic
 * matches. The daemon starts the parts of every route at their place in the stage order.
 */
import type { Config } from '../config/schema.js';
import { PayloadParser } from '../ingest/payload.js';
import { ModelStage } from '../model/model-stage.js';
import { ModelWatcher } from '../model/model-watcher.js';
import type { Scorer } from '../model/scorer.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { ModelMetrics, ModelSwapResult, SentinelMetrics } from '../observe/metrics.js';
import { Pipeline, type PipelineHooks } from '../pipeline/pipeline.js';

/** What a route runs: the model's name (its `model` label), file and session options. */
export interface RouteSpec {
  name: string;
  model: Config['model'];
  /** Indexes into config.subscriptions of the subscriptions that feed this route. */
  subscriptions: readonly number[];
}

export interface RouteHooks extends PipelineHooks {
  /** The route's model file changed and was swapped in (or refused): the daemon republishes its status. */
  onSwapped(route: Route, result: ModelSwapResult): void;
  onInternalError(stage: 'window' | 'decide' | 'model', err: unknown): void;
}

export class Route {
  readonly name: string;
  readonly metrics: ModelMetrics;
  readonly model: ModelStage;
  readonly watcher: ModelWatcher;
  private current: Pipeline | null = null;
  private parserFor: PayloadParser | null = null;
  private stopping = false;

  constructor(
    readonly spec: RouteSpec,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    metrics: SentinelMetrics,
    private readonly hooks: RouteHooks,
  ) {
    this.name = spec.name;
    this.metrics = metrics.forModel(spec.name);
    const routeLog = log.child({ model: spec.name });
    this.model = new ModelStage({ model: spec.model, batch: config.batch }, routeLog, warner, this.metrics, {
      onSwap: (next) => this.current?.swapModel(next),
    });
    this.watcher = new ModelWatcher(
      spec.model.path,
      {
        currentVersion: () => this.model.current?.manifest.version ?? '',
        reload: () => this.reload(),
        onError: (err) => hooks.onInternalError('model', err),
      },
      spec.model.watch,
      `model-watcher:${spec.name}`,
    );
  }

  /** The model serving now (after the model stage started). */
  get serving(): Scorer | null {
    return this.model.current;
  }

  /** The route's pipeline, made once its model is loaded (the pipeline owns the model sessions from then on). */
  pipeline(): Pipeline {
    if (this.current === null) {
      this.current = new Pipeline(this.model.handOver(), this.config, this.log.child({ model: this.name }), this.warner, this.metrics, this.hooks);
    }
    return this.current;
  }

  /** The pipeline if it was made. */
  get running(): Pipeline | null {
    return this.current;
  }

  /** Parses payloads into readings with this route's model channels. */
  parser(): PayloadParser {
    if (this.parserFor === null) {
      const model = this.model.current;
      if (model === null) throw new Error(`route ${this.name}: parser() before the model stage started`);
      const { ingest } = this.config;
      this.parserFor = new PayloadParser([...model.manifest.channels], ingest.maxPayloadBytes, ingest.maxFutureSkewMs);
    }
    return this.parserFor;
  }

  /** Swaps in a new version of this route's model file if it passes every check; other routes are untouched. */
  async reload(): Promise<ModelSwapResult> {
    if (this.stopping || this.current === null) return 'incomplete';
    const before = this.model.current?.manifest.version;
    const result = await this.model.reload();
    if (result === 'swapped' && this.model.current?.manifest.version !== before) this.hooks.onSwapped(this, result);
    return result;
  }

  /** No more reloads (the daemon is stopping). */
  stopReloads(): void {
    this.stopping = true;
  }
}
