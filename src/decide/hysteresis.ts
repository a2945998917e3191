/** Decisions: per-stream hysteresis over window scores, so one fault gives one `raised` and one `resolved`. */
import type { DecisionPolicy } from '../model/manifest.js';

export type DecisionEvent = 'raised' | 'resolved';

interface StreamDecisionState {
  raised: boolean;
  above: number;
  below: number;
  cooldownUntil: number;
  /** Highest score while raised, reported with `resolved`. */
  peak: number;
  /** The latest score, reported when an alert is closed for another reason than its scores. */
  last: number;
}

/** An alert closed without a score below the clear threshold (the stream went silent or was evicted). */
export interface ClosedAlert {
  peak: number;
  last: number;
}

/**
 * Only streams with something to remember (an open alert, a run of high scores, a cooldown) have a
 * state; a quiet stream costs nothing, so 100k healthy streams do not mean 100k objects.
 */
export class HysteresisDecider {
  private readonly streams = new Map<string, StreamDecisionState>();
  private raisedCount = 0;

  /** `policy` judges scores given without one of their own. */
  constructor(private readonly policy: DecisionPolicy) {}

  get activeAlerts(): number {
    return this.raisedCount;
  }

  /** Streams with a state held (open alert, high-score run or cooldown). */
  get tracked(): number {
    return this.streams.size;
  }

  isRaised(streamId: string): boolean {
    return this.streams.get(streamId)?.raised ?? false;
  }

  peakScore(streamId: string): number {
    return this.streams.get(streamId)?.peak ?? Number.NaN;
  }

  /**
   * Applies one score (record time `ts`, epoch ms) and returns the event it causes, if any. `p` is the
   * policy of the model that produced the score: across a model swap, a batch scored by the old model
   * is judged by the old model's thresholds. Stream states carry over from one model to the next.
   */
  decide(streamId: string, ts: number, score: number, p: DecisionPolicy = this.policy): DecisionEvent | null {
    // NaN never counts as above: a broken score must not raise alerts.
    const above = score >= p.raiseThreshold;
    let state = this.streams.get(streamId);
    if (state === undefined) {
      if (!above) return null;
      state = { raised: false, above: 0, below: 0, cooldownUntil: Number.NEGATIVE_INFINITY, peak: Number.NaN, last: score };
      this.streams.set(streamId, state);
    }
    state.last = score;
    if (!state.raised) {
      state.above = above ? state.above + 1 : 0;
      if (state.above >= p.raiseAfter && ts >= state.cooldownUntil) {
        state.raised = true;
        state.above = 0;
        state.below = 0;
        state.peak = score;
        this.raisedCount++;
        return 'raised';
      }
      if (state.above === 0 && ts >= state.cooldownUntil) this.streams.delete(streamId);
      return null;
    }
    if (score > state.peak) state.peak = score;
    state.below = score < p.clearThreshold ? state.below + 1 : 0;
    if (state.below >= p.resolveAfter) {
      state.raised = false;
      state.below = 0;
      state.above = 0;
      state.cooldownUntil = ts + p.cooldownMs;
      this.raisedCount--;
      return 'resolved';
    }
    return null;
  }

  /**
   * Closes the stream's open alert without a score (it went silent): returns what the `resolved` event
   * reports, or null when no alert was open. The stream's other state is dropped with it.
   */
  close(streamId: string): ClosedAlert | null {
    const state = this.streams.get(streamId);
    if (state === undefined || !state.raised) return null;
    this.raisedCount--;
    this.streams.delete(streamId);
    return { peak: state.peak, last: state.last };
  }

  /** Drops an evicted stream's state (an open alert on it is forgotten with it). */
  forget(streamId: string): void {
    const state = this.streams.get(streamId);
    if (state?.raised) this.raisedCount--;
    this.streams.delete(streamId);
  }
}
