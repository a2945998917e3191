/**
 * Many decision policies of one fitted baseline-tests model over one recorded stream at once, each
 * holding the stream's baseline while its own alert is open, row by row as the daemon does (a window is
 * decided before the stream's next row arrives): what leave-one-file-out scores candidates with.
 *
 * A policy's baseline depends on when its alerts opened and closed, so policies share a baseline only
 * while their alerts have opened and closed on the same rows: they start as one group and a group
 * splits when its members' alert states part. The baseline and the window statistics are the window
 * store's (src/window/baseline.ts, float32 readings); the tests are the model's, in float64.
 */
import { quantile, raiseThresholdFrom } from './calibrate.js';
import type { PolicyOptions } from './detector.js';
import { STUCK_EPSILON, type FittedTests } from './baseline-tests.js';

/** One recorded stream: the channels' columns, record times (ms; null: the row index) and 0/1 labels. */
export interface RecordedStream {
  columns: readonly Float64Array[];
  rows: number;
  timestamps: Float64Array | null;
  labels: Uint8Array;
}

export interface HoldSearchOptions {
  /** Rows counted start here (the SKAB protocol counts after the training rows). */
  from: number;
  /** Policies (by index) whose per-row alert state to return, for tests. */
  record?: readonly number[];
}

export interface HoldSearchResult {
  /** Per policy: TP, FP, FN, TN over rows [from, rows), 4 values each. */
  counts: Int32Array;
  /** Alert state after each row for the recorded policies (1 while an alert is open). */
  recorded: Map<number, Uint8Array>;
  /** Baselines followed: one per distinct history of open and closed alerts. */
  groups: number;
}

/** Policies that share a baseline: their alerts opened and closed on the same rows so far. */
interface Group {
  loc: Float32Array;
  vars: Float32Array;
  hold: boolean;
  heldRows: number;
  members: Int32Array;
}

/** Per window end row, per channel: mean, successive-difference RMS and newest of the float32 readings. */
function rawWindowStats(row32: Float32Array, rows: number, c: number, window: number): { mean: Float64Array; rough: Float64Array } {
  const mean = new Float64Array(rows * c);
  const rough = new Float64Array(rows * c);
  for (let i = window - 1; i < rows; i++) {
    for (let j = 0; j < c; j++) {
      let s = 0;
      let sq = 0;
      let prev = 0;
      for (let t = i - window + 1; t <= i; t++) {
        const x = row32[t * c + j]!;
        s += x;
        if (t > i - window + 1) sq += (x - prev) * (x - prev);
        prev = x;
      }
      mean[i * c + j] = s / window;
      rough[i * c + j] = Math.sqrt(sq / (window - 1));
    }
  }
  return { mean, rough };
}

const inverse = (m: number): number => (Number.isFinite(m) ? 1 / m : 0);

export function searchWithHold(fitted: FittedTests, stream: RecordedStream, window: number, policies: readonly PolicyOptions[], options: HoldSearchOptions): HoldSearchResult {
  const { rule, level } = fitted;
  const c = stream.columns.length;
  const rows = stream.rows;
  const n = policies.length;
  const row32 = new Float32Array(rows * c);
  for (let i = 0; i < rows; i++) for (let j = 0; j < c; j++) row32[i * c + j] = stream.columns[j]![i]!;
  const raw = rawWindowStats(row32, rows, c, window);
  const ts = (i: number): number => (stream.timestamps === null ? i : stream.timestamps[i]!);

  const heldOut = Float64Array.from(fitted.heldOut).sort();
  const invLevel = new Float64Array(n);
  const invSpike = new Float64Array(n);
  const invNoise = new Float64Array(n);
  const invStuck = new Float64Array(n);
  const clear = new Float64Array(n);
  const resolveAfter = new Int32Array(n);
  const raiseAfter = new Int32Array(n);
  const cooldownMs = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    const policy = policies[p]!;
    invLevel[p] = Math.fround(1 / raiseThresholdFrom(quantile(heldOut, policy.thresholdQuantile), policy.thresholdMultiplier));
    invSpike[p] = inverse(policy.spikeMultiplier);
    invNoise[p] = inverse(policy.noiseMultiplier);
    invStuck[p] = inverse(policy.stuckMultiplier);
    clear[p] = policy.clearRatio;
    resolveAfter[p] = policy.resolveAfter;
    raiseAfter[p] = policy.raiseAfter;
    cooldownMs[p] = policy.cooldownMs;
  }
  const raised = new Uint8Array(n);
  const above = new Int32Array(n);
  const below = new Int32Array(n);
  const cooldownUntil = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
  const counts = new Int32Array(n * 4);
  const recorded = new Map<number, Uint8Array>();
  for (const p of options.record ?? []) recorded.set(p, new Uint8Array(rows));

  const groups: Group[] = [{ loc: new Float32Array(c), vars: new Float32Array(c), hold: false, heldRows: 0, members: Int32Array.from({ length: n }, (_, p) => p) }];
  let groupCount = 1;
  const z = new Float64Array(c);
  const x = new Float64Array(c);
  const isRaised = new Uint8Array(n);
  // The window store's bookkeeping (WindowStore.commit), the same for every group: only the hold differs.
  let learned = 0;
  let ahead = 0;
  let filled = 0;
  for (let i = 0; i < rows; i++) {
    let learnLeaving = false;
    if (filled === window && learned >= rule.warmupRows) {
      if (ahead > 0) ahead--;
      else learnLeaving = true;
    }
    const wasFilled = filled;
    if (filled < window) filled++;
    let scored = false;
    if (learned < rule.warmupRows) {
      // Warm-up: no alert can be open yet, so there is one group.
      const g = groups[0]!;
      rule.learn(g.loc, g.vars, 0, row32, i * c, c, learned++);
      if (learned === rule.warmupRows) ahead = Math.min(wasFilled + 1, window);
    } else {
      scored = filled >= window;
    }
    const label = i >= options.from ? stream.labels[i]! : -1;
    for (let gi = 0, gn = groups.length; gi < gn; gi++) {
      const g = groups[gi]!;
      if (learnLeaving) {
        if (g.hold && g.heldRows < rule.maxHoldRows) g.heldRows++;
        else rule.learn(g.loc, g.vars, 0, row32, (i - window) * c, c, rule.warmupRows);
      }
      const members = g.members;
      if (!scored) {
        if (label >= 0) for (let k = 0; k < members.length; k++) counts[members[k]! * 4 + (raised[members[k]!]! ? (label ? 0 : 1) : label ? 2 : 3)]!++;
        continue;
      }
      // The tests on the window as the window store normalises it: (reading − location) / scale.
      let spike = 0;
      let noise = 0;
      let stuck = 0;
      for (let j = 0; j < c; j++) {
        const inv = 1 / rule.scale(g.vars[j]!, j);
        const m = g.loc[j]!;
        z[j] = (raw.mean[i * c + j]! - m) * inv;
        const r = raw.rough[i * c + j]! * inv;
        const s = Math.abs((row32[i * c + j]! - m) * inv) / fitted.spikeRef[j]!;
        if (s > spike) spike = s;
        const no = r / fitted.noiseRef[j]!;
        if (no > noise) noise = no;
        const st = 1 / (r + STUCK_EPSILON) / fitted.stuckRef[j]!;
        if (st > stuck) stuck = st;
      }
      for (let j = 0; j < c; j++) x[j] = (z[j]! - level.center[j]!) * level.scale[j]!;
      let lvl = 0;
      for (let a = 0; a < c; a++) {
        let mx = 0;
        for (let j = 0; j < c; j++) mx += level.metric[a * c + j]! * x[j]!;
        lvl += x[a]! * mx;
      }
      const t = ts(i);
      let up = 0;
      for (let k = 0; k < members.length; k++) {
        const p = members[k]!;
        let score = lvl * invLevel[p]!;
        const s = spike * invSpike[p]!;
        if (s > score) score = s;
        const no = noise * invNoise[p]!;
        if (no > score) score = no;
        const st = stuck * invStuck[p]!;
        if (st > score) score = st;
        // HysteresisDecider.decide with raiseThreshold 1 and clearThreshold clearRatio.
        if (raised[p] === 0) {
          above[p] = score >= 1 ? above[p]! + 1 : 0;
          if (above[p]! >= raiseAfter[p]! && t >= cooldownUntil[p]!) {
            raised[p] = 1;
            above[p] = 0;
            below[p] = 0;
          }
        } else {
          below[p] = score < clear[p]! ? below[p]! + 1 : 0;
          if (below[p]! >= resolveAfter[p]!) {
            raised[p] = 0;
            below[p] = 0;
            above[p] = 0;
            cooldownUntil[p] = t + cooldownMs[p]!;
          }
        }
        const r = raised[p]!;
        isRaised[p] = r;
        up += r;
        if (label >= 0) counts[p * 4 + (r ? (label ? 0 : 1) : label ? 2 : 3)]!++;
      }
      // The alert state decides the hold for the stream's next row (DecisionStage → holdBaseline).
      const hold = up > 0;
      if (up === 0 || up === members.length) {
        if (hold !== g.hold) {
          g.hold = hold;
          g.heldRows = 0;
        }
        continue;
      }
      const open = new Int32Array(up);
      const closed = new Int32Array(members.length - up);
      for (let k = 0, a = 0, b = 0; k < members.length; k++) {
        const p = members[k]!;
        if (isRaised[p]) open[a++] = p;
        else closed[b++] = p;
      }
      const moved = !g.hold;
      groups.push({ loc: Float32Array.from(g.loc), vars: Float32Array.from(g.vars), hold: true, heldRows: moved ? 0 : g.heldRows, members: open });
      groupCount++;
      if (g.hold) g.heldRows = 0;
      g.hold = false;
      g.members = closed;
    }
    for (const [p, out] of recorded) out[i] = raised[p]!;
  }
  return { counts, recorded, groups: groupCount };
}
