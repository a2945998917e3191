/**
 * A route: one model and the subscriptions that name it. Each route has its own model stage (load,
 * hot swap, refusal rules), pipeline (queue, windows, batches, decisions), model watcher and `model`
 * metric label; a stream belongs to exactly one route, the one of the first subscription its topic
 * matches. The daemon starts the parts of every route at their place in the stage order.
 */
import type { Config } from '../config/schema.js';
import { PayloadParser } from '../ingest/payload.js';
import { loadOptionsFor, ModelStage } from '../model/model-stage.js';
import { ModelWatcher } from '../model/model-watcher.js';
import { loadModel, ModelError, swapIncompatibility, type Scorer } from '../model/scorer.js';
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
  /** Watches the candidate file beside the model (see candidatePathFor): present, it scores in shadow. */
  readonly candidateWatcher: ModelWatcher;
  readonly candidatePath: string;
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
    this.candidatePath = candidatePathFor(spec.model.path);
    this.candidateWatcher = new ModelWatcher(
      this.candidatePath,
      {
        currentVersion: () => this.current?.shadowScorer?.manifest.version ?? '',
        reload: () => this.loadCandidate(),
        onMissing: () => this.clearCandidate('its files are gone'),
        onError: (err) => hooks.onInternalError('model', err),
      },
      spec.model.watch,
      `candidate-watcher:${spec.name}`,
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
    const now = this.model.current?.manifest.version;
    if (result === 'swapped' && now !== before) {
      // A promoted candidate is live now: scoring it twice would only compare it with itself.
      if (this.current?.shadowScorer?.manifest.version === now) this.clearCandidate('it is the live model now');
      this.hooks.onSwapped(this, result);
    }
    return result;
  }

  /**
   * Loads the candidate model and, if it fits the live pipeline (same window, channels and
   * normalisation: it reads the very same windows), scores every batch with it in shadow from the next
   * batch on. A candidate identical to the live model (just promoted) is not needed and is dropped.
   */
  async loadCandidate(): Promise<ModelSwapResult> {
    const pipeline = this.current;
    const live = this.model.current;
    if (this.stopping || pipeline === null || live === null) return 'incomplete';
    let next: Scorer;
    try {
      next = await loadModel(this.candidatePath, loadOptionsFor({ model: this.spec.model, batch: this.config.batch }, this.log));
    } catch (err) {
      const incomplete = err instanceof ModelError && err.kind === 'incomplete';
      this.warner.warn(`candidate-${this.name}`, { model: this.name, path: this.candidatePath, err: (err as Error).message }, incomplete ? 'candidate model not readable yet; will retry' : 'candidate model refused');
      return incomplete ? 'incomplete' : 'refused';
    }
    const problem = swapIncompatibility(live.manifest, next.manifest);
    if (problem !== null || this.stopping || this.model.current !== live) {
      await next.release();
      if (problem === null) return 'incomplete';
      this.log.warn({ model: this.name, candidate: next.manifest.version, problem }, 'candidate model refused: it does not fit the live pipeline');
      return 'refused';
    }
    if (next.manifest.version === live.manifest.version) {
      await next.release();
      this.clearCandidate('it is the live model now');
      return 'swapped';
    }
    pipeline.setShadow(next);
    this.metrics.setShadow({ name: next.manifest.name, version: next.manifest.version });
    this.log.info({ model: this.name, live: live.manifest.version, candidate: next.manifest.version, path: this.candidatePath }, 'candidate model scoring in shadow (its alerts are not published)');
    return 'swapped';
  }

  /** Stops shadow scoring (the candidate was removed or promoted). */
  clearCandidate(why: string): void {
    const pipeline = this.current;
    if (pipeline === null || pipeline.shadowScorer === null) return;
    pipeline.setShadow(null);
    this.metrics.setShadow(null);
    this.log.info({ model: this.name, why }, 'shadow scoring stopped');
  }

  /** No more reloads (the daemon is stopping). */
  stopReloads(): void {
    this.stopping = true;
  }
}

/** Where a model's candidate lives: `models/pump.onnx` → `models/pump.candidate.onnx` (manifest `pump.candidate.json`). */
export function candidatePathFor(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '') + '.candidate.onnx';
}

/** Where promotion keeps the model it replaced, for rollback: `models/pump.previous.onnx`. */
export function previousPathFor(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '') + '.previous.onnx';
}
