/** Reads the daemon's /metrics text: counter sums and histogram quantiles (the way histogram_quantile() does). */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class MetricsSnapshot {
  constructor(
    readonly samples: Sample[],
    /** performance.now() when it was taken. */
    readonly at: number,
  ) {}

  static parse(text: string, at: number): MetricsSnapshot {
    const samples: Sample[] = [];
    for (const line of text.split('\n')) {
      if (line.length === 0 || line.startsWith('#')) continue;
      const brace = line.indexOf('{');
      const space = line.lastIndexOf(' ');
      if (space < 0) continue;
      const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
      const labels: Record<string, string> = {};
      if (brace >= 0 && brace < space) {
        const body = line.slice(brace + 1, line.lastIndexOf('}'));
        for (const match of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1] as string] = match[2] as string;
      }
      samples.push({ name, labels, value: Number(line.slice(space + 1)) });
    }
    return new MetricsSnapshot(samples, at);
  }

  /** Sum of every series of a metric (all label values). */
  sum(name: string): number {
    let total = 0;
    for (const s of this.samples) if (s.name === name) total += s.value;
    return total;
  }

  /** Sum of the series of a metric whose labels include all of `labels`. */
  sumWhere(name: string, labels: Record<string, string>): number {
    let total = 0;
    for (const s of this.samples) {
      if (s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value)) total += s.value;
    }
    return total;
  }

  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }

  /** Cumulative bucket counts of a histogram, ascending by upper bound (+Inf last). */
  buckets(name: string): Array<{ le: number; count: number }> {
    const out: Array<{ le: number; count: number }> = [];
    for (const s of this.samples) {
      if (s.name !== `${name}_bucket`) continue;
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      out.push({ le, count: s.value });
    }
    return out.sort((a, b) => a.le - b.le);
  }
}

export interface HistogramSummary {
  count: number;
  /** Seconds, interpolated inside the bucket (Prometheus histogram_quantile). */
  p50: number;
  p99: number;
  /** Upper bound of the bucket that holds the 99th percentile: the p99 is at most this. */
  p99Bound: number;
  mean: number;
}

/** Quantiles of what a histogram observed between two snapshots. */
export function histogramBetween(name: string, before: MetricsSnapshot, after: MetricsSnapshot): HistogramSummary {
  const a = before.buckets(name);
  const b = after.buckets(name);
  const diff = b.map((bucket, i) => ({ le: bucket.le, count: bucket.count - (a[i]?.count ?? 0) }));
  const count = diff.at(-1)?.count ?? 0;
  const sum = after.sum(`${name}_sum`) - before.sum(`${name}_sum`);
  return {
    count,
    p50: quantile(diff, 0.5).value,
    p99: quantile(diff, 0.99).value,
    p99Bound: quantile(diff, 0.99).bound,
    mean: count > 0 ? sum / count : Number.NaN,
  };
}

function quantile(buckets: Array<{ le: number; count: number }>, q: number): { value: number; bound: number } {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return { value: Number.NaN, bound: Number.NaN };
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return { value: prevLe, bound: Number.POSITIVE_INFINITY };
      const inBucket = count - prevCount;
      const value = inBucket > 0 ? prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket : le;
      return { value, bound: le };
    }
    prevLe = le;
    prevCount = count;
  }
  return { value: prevLe, bound: Number.POSITIVE_INFINITY };
}

/** Exact quantile of raw samples (nearest rank). */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
