/**
 * The one lifecycle contract of the daemon's stages, and the runner that keeps it: stages start in the
 * order given and stop in reverse, so what feeds a stage stops before it and what it feeds stops after.
 */

export interface Stage {
  /** For logs and the order of stops. */
  readonly name: string;
  /** Starts the stage; throws when it can never work as configured (fail fast, before anything downstream starts). */
  start(): Promise<void>;
  /**
   * Stops the stage once every stage that feeds it has stopped. Work still pending when `deadline`
   * aborts is left where it is safe (unacknowledged at the broker, or in the outbox) and stop returns.
   */
  stop(deadline: AbortSignal): Promise<void>;
}

export interface StagesHooks {
  /** A stage's stop threw (a bug): the others still stop. */
  onStopError(stage: string, err: unknown): void;
}

export class Stages {
  private readonly started: Stage[] = [];

  constructor(private readonly hooks: StagesHooks) {}

  /** Starts a stage and records it; when start throws, the stage counts as not started. */
  async start<S extends Stage>(stage: S): Promise<S> {
    await stage.start();
    this.started.push(stage);
    return stage;
  }

  /** Names of the started stages, in start order. */
  get names(): string[] {
    return this.started.map((s) => s.name);
  }

  /**
   * Stops every started stage in reverse order, each exactly once. Resolves with the names of the stages
   * whose stop ended after the deadline had passed.
   */
  async stop(deadline: AbortSignal): Promise<Set<string>> {
    const late = new Set<string>();
    while (this.started.length > 0) {
      const stage = this.started.pop() as Stage;
      try {
        await stage.stop(deadline);
      } catch (err) {
        this.hooks.onStopError(stage.name, err);
      }
      if (deadline.aborted) late.add(stage.name);
    }
    return late;
  }
}

/** Resolves when the signal aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Resolves true when `work` settles before the deadline, false when the deadline came first (work is left to run). */
export async function beforeDeadline(work: Promise<unknown>, deadline: AbortSignal): Promise<boolean> {
  if (deadline.aborted) return false;
  return Promise.race([work.then(() => true, () => true), aborted(deadline).then(() => false)]);
}
