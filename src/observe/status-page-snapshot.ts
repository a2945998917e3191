/**
 * What the live status page shows: the snapshot schema (the JSON of /status.json and of every SSE event),
 * the bounded structures that feed it (top streams by score, open alerts) and the pure function that
 * builds one snapshot from the daemon's plain inputs.
 */
import { z } from 'zod';
import { alertSchema, finiteScore, type Alert } from '../alert/alert.js';
import { driftSnapshotSchema, type DriftSnapshot } from '../drift/snapshot.js';

/** Points of score history kept per shown stream (one per tick: a minute at the default 1 s). */
export const HISTORY_POINTS = 60;
/** A shown stream not scored again is kept this long (slow sensors), after the streams scored this tick. */
export const STREAM_HOLD_MS = 30_000;
/** Open alerts listed in a snapshot (the count covers all of them). */
export const MAX_ALERTS_SHOWN = 50;

const count = z.number().min(0);
const rate = z.number().min(0).nullable();

export const statusStreamSchema = z.object({
  streamId: z.string(),
  model: z.string().describe('the model (its name in the config) that scored it'),
  score: z.number().describe('its highest score in the last tick it was among the top streams'),
  raised: z.boolean().describe('its alert is open'),
  seenAtMs: z.number().describe('epoch ms of that tick'),
  history: z.array(z.number().nullable()).max(HISTORY_POINTS).describe('one point per tick, oldest first; null: not among the top streams that tick'),
});
export type StatusStream = z.infer<typeof statusStreamSchema>;

export const statusModelSchema = z.object({
  model: z.string().describe('its name in the config'),
  loaded: z.boolean(),
  name: z.string().nullable().describe('manifest name'),
  version: z.string().nullable(),
  provider: z.string().nullable().describe('execution provider (cpu, cuda)'),
  raiseThreshold: z.number().nullable(),
  clearThreshold: z.number().nullable(),
});

export const statusCountersSchema = z.object({
  received: count.describe('MQTT messages received'),
  scored: count.describe('windows scored'),
  raised: count.describe('alerts raised'),
  resolved: count.describe('alerts resolved'),
  rejected: count.describe('readings rejected, all reasons'),
  dropped: count.describe('readings dropped (queue full, shutdown)'),
});
export type StatusCounters = z.infer<typeof statusCountersSchema>;

/** The one schema of the page's data: /status.json and every SSE `data:` line parse with it. */
export const statusSnapshotSchema = z.object({
  atMs: z.number().describe('epoch ms the snapshot was taken'),
  version: z.string(),
  nodeName: z.string(),
  startedAt: z.string().describe('ISO-8601 start of this daemon process (a new value: the daemon restarted)'),
  broker: z.object({ connected: z.boolean() }),
  models: z.array(statusModelSchema),
  queue: z.object({ depth: count, capacity: count }),
  counters: statusCountersSchema,
  rates: z.object({
    messagesPerSecond: rate,
    windowsPerSecond: rate,
    alertsPerMinute: rate.describe('alerts raised per minute'),
  }).describe('over the last tick; null on the first one and after a restart'),
  rejects: z.record(z.string(), count).describe('readings rejected, by reason'),
  alerts: z.object({
    open: count.describe('streams with an open alert, all models'),
    shown: z.array(alertSchema.extend({ latest: z.number().nullable().describe('its latest score, when it is among the top streams') })).max(MAX_ALERTS_SHOWN),
  }),
  streams: z.array(statusStreamSchema),
  drift: z.record(z.string(), driftSnapshotSchema).describe('per model, when drift.enabled'),
});
export type StatusSnapshot = z.infer<typeof statusSnapshotSchema>;

/** One stream's highest score over a tick, as TopStreams.drain gives it, with the model that scored it. */
export interface ScoredStream {
  streamId: string;
  score: number;
  model: string;
}

/** What the daemon passes to buildStatusSnapshot each tick (see docs/status-page.md for where each comes from). */
export interface StatusInputs {
  version: string;
  nodeName: string;
  startedAt: string;
  brokerConnected: boolean;
  models: ReadonlyArray<z.infer<typeof statusModelSchema>>;
  queue: { depth: number; capacity: number };
  counters: Omit<StatusCounters, 'rejected'>;
  /** Rejected readings by reason; their sum is counters.rejected. */
  rejects: Readonly<Record<string, number>>;
  /** Streams with an open alert (DecisionStage.activeAlerts summed over models). */
  openAlerts: number;
  /** The open alerts kept for the page (OpenAlerts.list()). */
  alerts: readonly Alert[];
  /** Every model's TopStreams.drain() of this tick. */
  scored: readonly ScoredStream[];
  drift?: Readonly<Record<string, DriftSnapshot>>;
  /** How many streams to show (config http.statusTopStreams). */
  topStreams: number;
  /** Epoch ms now (tests pass one). */
  now?: number;
}

/**
 * The `capacity` highest-scoring streams since the last drain, each with its highest score. The scoring
 * path calls offer() once per scored window: one comparison when the table is full and the score is
 * below its lowest entry (the common case), else a scan of `capacity` slots; no allocation.
 */
export class TopStreams {
  private readonly ids: Array<string | null>;
  private readonly scores: Float64Array;
  private size = 0;
  /** The score an offer must beat: the lowest entry's once full, -Infinity before. */
  private floor = Number.NEGATIVE_INFINITY;
  private floorAt = 0;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new Error(`TopStreams capacity must be a positive integer, got ${capacity}`);
    this.ids = new Array<string | null>(capacity).fill(null);
    this.scores = new Float64Array(capacity);
  }

  offer(streamId: string, score: number): void {
    // NaN is never above the floor: a broken score is not a top stream.
    if (!(score > this.floor)) return;
    const { ids, scores } = this;
    for (let i = 0; i < this.size; i++) {
      if (ids[i] !== streamId) continue;
      if (score > (scores[i] as number)) {
        scores[i] = score;
        if (i === this.floorAt && this.size === this.capacity) this.findFloor();
      }
      return;
    }
    if (this.size < this.capacity) {
      ids[this.size] = streamId;
      scores[this.size] = score;
      this.size++;
      if (this.size === this.capacity) this.findFloor();
      return;
    }
    ids[this.floorAt] = streamId;
    scores[this.floorAt] = score;
    this.findFloor();
  }

  /** The entries since the last drain, highest first, tagged with `model`; the table starts empty again. */
  drain(model: string): ScoredStream[] {
    const out: ScoredStream[] = [];
    for (let i = 0; i < this.size; i++) {
      out.push({ streamId: this.ids[i] as string, score: this.scores[i] as number, model });
      this.ids[i] = null;
    }
    this.size = 0;
    this.floor = Number.NEGATIVE_INFINITY;
    return out.sort((a, b) => b.score - a.score);
  }

  private findFloor(): void {
    let at = 0;
    for (let i = 1; i < this.size; i++) if ((this.scores[i] as number) < (this.scores[at] as number)) at = i;
    this.floorAt = at;
    this.floor = this.scores[at] as number;
  }
}

/**
 * The open alerts, by stream: a `raised` alert opens one, any `resolved` (score, stale, evicted) closes
 * it. Fed with every decided alert (rare, not per message); beyond `capacity` the oldest is let go
 * (the snapshot's open count still comes from the decision stages).
 */
export class OpenAlerts {
  private readonly open = new Map<string, Alert>();

  constructor(readonly capacity: number) {}

  record(alert: Alert): void {
    this.open.delete(alert.streamId);
    if (alert.type !== 'raised') return;
    if (this.open.size >= this.capacity) {
      const oldest = this.open.keys().next();
      if (oldest.done !== true) this.open.delete(oldest.value);
    }
    this.open.set(alert.streamId, alert);
  }

  get size(): number {
    return this.open.size;
  }

  /** Newest first. */
  list(): Alert[] {
    return [...this.open.values()].reverse();
  }

  clear(): void {
    this.open.clear();
  }
}

function rateOf(now: number, before: number, seconds: number): number | null {
  if (!(seconds > 0) || now < before) return null;
  return Math.round(((now - before) / seconds) * 100) / 100;
}

function pushHistory(history: ReadonlyArray<number | null> | undefined, point: number | null): Array<number | null> {
  const next = history === undefined ? [point] : [...history, point];
  return next.length > HISTORY_POINTS ? next.slice(next.length - HISTORY_POINTS) : next;
}

/**
 * One snapshot from plain inputs. `previous` (the last snapshot, null at first) carries the state that
 * spans ticks: the rates are the counters' change since it, and each shown stream's history extends
 * its own. Cost: O(top streams × history points + shown alerts), independent of the number of streams.
 */
export function buildStatusSnapshot(inputs: StatusInputs, previous: StatusSnapshot | null = null): StatusSnapshot {
  const now = inputs.now ?? Date.now();
  const raised = new Set<string>();
  for (const alert of inputs.alerts) raised.add(alert.streamId);

  // Streams scored this tick first (highest score first), then the ones held from earlier ticks.
  const best = new Map<string, ScoredStream>();
  for (const entry of inputs.scored) {
    const seen = best.get(entry.streamId);
    if (seen === undefined || entry.score > seen.score) best.set(entry.streamId, entry);
  }
  const fresh = [...best.values()].sort((a, b) => b.score - a.score).slice(0, inputs.topStreams);
  // A restarted daemon's history is its own.
  const carried = previous !== null && previous.startedAt === inputs.startedAt ? previous.streams : [];
  const before = new Map(carried.map((s) => [s.streamId, s]));
  const streams: StatusStream[] = fresh.map((entry) => {
    const score = finiteScore(entry.score);
    return { streamId: entry.streamId, model: entry.model, score, raised: raised.has(entry.streamId), seenAtMs: now, history: pushHistory(before.get(entry.streamId)?.history, score) };
  });
  for (const held of carried) {
    if (streams.length >= inputs.topStreams) break;
    if (best.has(held.streamId) || now - held.seenAtMs > STREAM_HOLD_MS) continue;
    streams.push({ ...held, raised: raised.has(held.streamId), history: pushHistory(held.history, null) });
  }

  const latest = new Map(streams.filter((s) => s.seenAtMs === now).map((s) => [s.streamId, s.score]));
  const rejected = Object.values(inputs.rejects).reduce((sum, n) => sum + n, 0);
  const counters: StatusCounters = { ...inputs.counters, rejected };
  const same = previous !== null && previous.startedAt === inputs.startedAt;
  const seconds = same ? (now - previous.atMs) / 1000 : 0;
  const was = same ? previous.counters : counters;
  return {
    atMs: now,
    version: inputs.version,
    nodeName: inputs.nodeName,
    startedAt: inputs.startedAt,
    broker: { connected: inputs.brokerConnected },
    models: inputs.models.map((m) => ({ ...m })),
    queue: { depth: inputs.queue.depth, capacity: inputs.queue.capacity },
    counters,
    rates: {
      messagesPerSecond: rateOf(counters.received, was.received, seconds),
      windowsPerSecond: rateOf(counters.scored, was.scored, seconds),
      alertsPerMinute: rateOf(counters.raised * 60, was.raised * 60, seconds),
    },
    rejects: { ...inputs.rejects },
    alerts: {
      open: Math.max(inputs.openAlerts, inputs.alerts.length),
      shown: inputs.alerts.slice(0, MAX_ALERTS_SHOWN).map((alert) => ({ ...alert, latest: latest.get(alert.streamId) ?? null })),
    },
    streams,
    drift: { ...(inputs.drift ?? {}) },
  };
}
