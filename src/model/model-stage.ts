/**
 * The model stage: loads and warms up the configured model at start (fail fast), and swaps in a new
 * version of the file when asked (watcher, cron poll, SIGHUP) if it is valid and fits the running
 * pipeline; the old model keeps serving otherwise. Once the pipeline takes the model it owns the
 * sessions (it releases each one after its last batch).
 */
import type { Config } from '../config/schema.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { ModelMetrics, ModelSwapResult } from '../observe/metrics.js';
import type { Stage } from '../lifecycle/stage.js';
import { loadModel, ModelError, swapIncompatibility, type LoadModelOptions, type Scorer } from './scorer.js';

/** How a model of this config is loaded: providers, threads, warm-up runs up to the largest batch. */
export function loadOptionsFor(config: Pick<Config, 'model' | 'batch'>, log: Logger): LoadModelOptions {
  return {
    executionProviders: config.model.executionProviders,
    intraOpThreads: config.model.intraOpThreads,
    warmupRuns: config.model.warmupRuns,
    maxBatch: config.batch.maxSize,
    onFallback: (provider, err) => log.warn({ provider, err: err.message }, `execution provider ${provider} unavailable, falling back to the next one`),
  };
}

export interface ModelStageHooks {
  /** A new model passed every check: the pipeline scores with it from its next batch. */
  onSwap(next: Scorer): void;
}

export class ModelStage implements Stage {
  /** The stage name: `model:<the model's name in the config>`. */
  readonly name: string;
  private model: Scorer | null = null;
  private handedOver = false;
  private stopping = false;

  constructor(
    private readonly config: Pick<Config, 'model' | 'batch'>,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    private readonly metrics: ModelMetrics,
    private readonly hooks: ModelStageHooks,
  ) {
    this.name = `model:${metrics.model}`;
  }

  /** The model serving now, or null before start. */
  get current(): Scorer | null {
    return this.model;
  }

  async start(): Promise<void> {
    const model = await loadModel(this.config.model.path, this.loadOptions());
    this.model = model;
    const { manifest } = model;
    this.metrics.setModel(manifest.name, manifest.version, model.provider);
    this.log.info(
      { model: manifest.name, version: manifest.version, provider: model.provider, window: manifest.window, channels: manifest.channels },
      'model loaded and warmed up',
    );
  }

  /** The model for the pipeline, which owns its session (and every swapped-in one) from now on. */
  handOver(): Scorer {
    if (this.model === null) throw new Error('model stage: handOver() before start()');
    this.handedOver = true;
    return this.model;
  }

  /**
   * Loads the model file again and, if it is a new valid model that fits the running pipeline (same
   * window, channels and normalisation), swaps it in between two batches.
   */
  async reload(): Promise<ModelSwapResult> {
    const { log, metrics } = this;
    const current = this.model;
    if (current === null || this.stopping) return 'incomplete';
    let next: Scorer;
    try {
      next = await loadModel(this.config.model.path, this.loadOptions());
    } catch (err) {
      const result = err instanceof ModelError && err.kind === 'incomplete' ? 'incomplete' : 'refused';
      metrics.modelSwaps(result).inc();
      this.warner.warn(`model-${result}`, { err: (err as Error).message }, result === 'refused' ? 'new model refused; the old one keeps serving' : 'new model not readable yet; will retry');
      return result;
    }
    if (next.manifest.version === current.manifest.version) {
      await next.release();
      return 'swapped';
    }
    const problem = swapIncompatibility(current.manifest, next.manifest);
    if (problem !== null || this.stopping || this.model !== current) {
      await next.release();
      if (problem === null) return 'incomplete';
      metrics.modelSwaps('refused').inc();
      log.warn({ model: next.manifest.name, version: next.manifest.version, problem }, 'new model refused: it does not fit the running pipeline (restart to change shape); the old one keeps serving');
      return 'refused';
    }
    if (this.handedOver) this.hooks.onSwap(next);
    else void current.release();
    this.model = next;
    metrics.setModel(next.manifest.name, next.manifest.version, next.provider);
    metrics.modelSwaps('swapped').inc();
    log.info({ from: current.manifest.version, to: next.manifest.version, model: next.manifest.name, provider: next.provider }, 'model swapped');
    return 'swapped';
  }

  /** No more swaps; releases the model unless the pipeline took it (the pipeline releases its own). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.handedOver) await this.model?.release();
  }

  private loadOptions(): LoadModelOptions {
    return loadOptionsFor(this.config, this.log);
  }
}
