/**
 * Shadow decisions: a candidate model scores the same windows as the live one and decides with its own
 * hysteresis state, but its alerts are never published: they are counted and logged, and each window
 * is compared with the live model's — does each model put the window above its raise threshold, and
 * does each hold an open alert on the stream afterwards. That is what promotion is judged on.
 */
import type { Alert } from '../alert/alert.js';
import type { ShadowResult } from '../batch/micro-batcher.js';
import type { Manifest } from '../model/manifest.js';
import { DecisionStage, type SilentReason } from './decision-stage.js';

/** Where a window's two judgements stand: both the same, only the live model, only the shadow. */
export const comparisonOutcomes = ['agree', 'live_only', 'shadow_only'] as const;
export type ComparisonOutcome = (typeof comparisonOutcomes)[number];

export interface ShadowTally {
  windows: number;
  /** Score above the model's raise threshold. */
  scores: Record<ComparisonOutcome, number>;
  /** Alert open on the stream after the window was decided. */
  decisions: Record<ComparisonOutcome, number>;
  alerts: { raised: number; resolved: number };
}

export function emptyTally(): ShadowTally {
  return { windows: 0, scores: { agree: 0, live_only: 0, shadow_only: 0 }, decisions: { agree: 0, live_only: 0, shadow_only: 0 }, alerts: { raised: 0, resolved: 0 } };
}

export interface ShadowHooks {
  /** A decision the shadow model made: logged and counted, never published. */
  onShadowAlert(alert: Alert): void;
  onError(err: unknown): void;
}

const outcome = (live: boolean, shadow: boolean): ComparisonOutcome => (live === shadow ? 'agree' : live ? 'live_only' : 'shadow_only');

export class ShadowComparison {
  private readonly decisions: DecisionStage;
  /** Since start (or the last take()), folded into metrics on scrape. */
  private tally = emptyTally();

  constructor(
    initial: Manifest,
    options: { nodeName: string; topChannels: number },
    /** Whether the live model holds an open alert on a stream. */
    private readonly liveRaised: (streamId: string) => boolean,
    private readonly hooks: ShadowHooks,
  ) {
    this.decisions = new DecisionStage(initial, options, {
      onAlert: (alert) => {
        this.tally.alerts[alert.type]++;
        hooks.onShadowAlert(alert);
      },
      onSaturated: () => undefined,
      onError: (err) => hooks.onError(err),
    });
  }

  /** Decides the shadow's scores for a batch the live model has just decided, and compares window by window. */
  compare({ batch, output, scorer, live, liveScorer }: ShadowResult): void {
    this.decisions.decideBatch(batch, output, scorer.manifest);
    const liveRaise = liveScorer.manifest.policy.raiseThreshold;
    const shadowRaise = scorer.manifest.policy.raiseThreshold;
    const tally = this.tally;
    for (let i = 0; i < batch.size; i++) {
      const streamId = batch.streamIds[i] as string;
      tally.scores[outcome((live.scores[i] as number) >= liveRaise, (output.scores[i] as number) >= shadowRaise)]++;
      tally.decisions[outcome(this.liveRaised(streamId), this.decisions.isRaised(streamId))]++;
    }
    tally.windows += batch.size;
  }

  /** The stream went silent or left the table: the shadow closes its alert too (unpublished). */
  closeSilent(streamId: string, reason: SilentReason, ts: number, model: Manifest): void {
    this.decisions.closeSilent(streamId, reason, ts, model);
  }

  forget(streamId: string): void {
    this.decisions.forget(streamId);
  }

  /** Streams the shadow holds an open alert on. */
  get activeAlerts(): number {
    return this.decisions.activeAlerts;
  }

  /** The counts since the last call, and zero again (for metrics, which add them up). */
  take(): ShadowTally {
    const out = this.tally;
    this.tally = emptyTally();
    return out;
  }
}
