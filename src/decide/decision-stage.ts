/**
 * The decision stage: scored windows → per-stream hysteresis → alerts. Every decision is judged by the
 * policy of the model that scored its window, and its alert names that model and its thresholds.
 */
import { alertEventId, finiteScore, isoTime, testEvidence, topChannels, type Alert } from '../alert/alert.js';
import type { WindowBatch } from '../batch/micro-batcher.js';
import type { Manifest } from '../model/manifest.js';
import type { ScoreOutput } from '../model/scorer.js';
import { HysteresisDecider, type ClosedAlert } from './hysteresis.js';

export interface DecisionOptions {
  /** Goes into every alert (config nodeName). */
  nodeName: string;
  /** How many channels an alert lists by contribution (config alert.topChannels). */
  topChannels: number;
}

export interface DecisionHooks {
  /** An alert was decided; the caller journals and publishes it. */
  onAlert(alert: Alert): void;
  /** A score overflowed float32 (extreme input) and is reported as the largest float32. */
  onSaturated(): void;
  /** A bug while deciding one window: that window's decision is lost, never the rest of the batch. */
  onError(err: unknown): void;
  /**
   * Every window's decision, in order: its index in the batch, the score as reported, and whether its
   * stream's alert is open afterwards. For drivers that follow each window (evaluation); the daemon
   * leaves it unset, so it costs nothing there.
   */
  onDecided?(index: number, score: number, raised: boolean): void;
}

/** Why an alert was closed without a score below the clear threshold. */
export type SilentReason = 'stale' | 'evicted';

export class DecisionStage {
  private readonly decider: HysteresisDecider;

  constructor(
    initial: Manifest,
    private readonly options: DecisionOptions,
    private readonly hooks: DecisionHooks,
  ) {
    this.decider = new HysteresisDecider(initial.policy);
  }

  /** Streams with an open alert. */
  get activeAlerts(): number {
    return this.decider.activeAlerts;
  }

  /** Decides every window of a batch `model` scored, in the order the windows were added. */
  decideBatch(batch: WindowBatch, output: ScoreOutput, model: Manifest): void {
    for (let i = 0; i < batch.size; i++) {
      try {
        this.decideWindow(batch, output, model, i);
      } catch (err) {
        this.hooks.onError(err);
      }
    }
  }

  /**
   * Closes a stream's open alert that no score will close (it went silent, or left the table) with a
   * `resolved` alert giving the reason, so subscribers never hold an open alert for a silent sensor.
   * `model` is the one serving now; `ts` the stream's last record time.
   */
  closeSilent(streamId: string, reason: SilentReason, ts: number, model: Manifest): void {
    const closed = this.decider.close(streamId);
    if (reason === 'evicted') this.decider.forget(streamId);
    if (closed !== null) this.hooks.onAlert(this.silentAlert(streamId, reason, closed, ts, model));
  }

  /** Whether the stream's alert is open now. */
  isRaised(streamId: string): boolean {
    return this.decider.isRaised(streamId);
  }

  /** Drops a stream's decision state (its window was given to another stream). */
  forget(streamId: string): void {
    this.decider.forget(streamId);
  }

  private decideWindow(batch: WindowBatch, output: ScoreOutput, model: Manifest, i: number): void {
    const streamId = batch.streamIds[i] as string;
    const ts = batch.ts[i] as number;
    const raw = output.scores[i] as number;
    // Extreme readings overflow float32 inside the model: off the scale is the most anomalous, not silence.
    const score = finiteScore(raw);
    if (score !== raw) this.hooks.onSaturated();
    const event = this.decider.decide(streamId, ts, score, model.policy);
    this.hooks.onDecided?.(i, score, this.decider.isRaised(streamId));
    if (event === null) return;
    const alert: Alert = {
      eventId: alertEventId(streamId, event, ts, model.version),
      type: event,
      streamId,
      nodeName: this.options.nodeName,
      recordTs: isoTime(ts),
      detectedAt: new Date().toISOString(),
      score,
      thresholds: { raise: model.policy.raiseThreshold, clear: model.policy.clearThreshold },
      model: { name: model.name, version: model.version },
      topChannels: topChannels(model.channels, output.contributions, i * model.channels.length, this.options.topChannels),
    };
    const tests = model.outputs.tests;
    if (event === 'raised' && tests !== undefined && output.tests && output.testChannels) {
      alert.evidence = testEvidence(tests.names, model.channels, output.tests, output.testChannels, i, model.policy.raiseThreshold);
    }
    if (event === 'resolved') {
      alert.peakScore = finiteScore(this.decider.peakScore(streamId));
      alert.reason = 'score';
    }
    this.hooks.onAlert(alert);
  }

  private silentAlert(streamId: string, reason: SilentReason, closed: ClosedAlert, ts: number, model: Manifest): Alert {
    return {
      eventId: alertEventId(streamId, `resolved:${reason}`, ts, model.version),
      type: 'resolved',
      streamId,
      nodeName: this.options.nodeName,
      recordTs: isoTime(ts),
      detectedAt: new Date().toISOString(),
      score: finiteScore(closed.last),
      peakScore: finiteScore(closed.peak),
      reason,
      thresholds: { raise: model.policy.raiseThreshold, clear: model.policy.clearThreshold },
      model: { name: model.name, version: model.version },
      topChannels: [],
    };
  }
}
