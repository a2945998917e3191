import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SentinelMetrics } from '../../src/observe/metrics.js';
import { WindowHistogram } from '../../src/observe/window-histogram.js';

const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1];

describe('window histogram', () => {
  it('exposes exactly what prom-client\'s Histogram does for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new WindowHistogram('t_latency_seconds', 'test latency', buckets, ours);
    const reference = new Histogram({ name: 't_latency_seconds', help: 'test latency', buckets, registers: [theirs] });
    // bounds themselves (le is inclusive), values between, below the first and above the last bound
    const values = [...buckets, 0, 0.0004, 0.0007, 0.003, 0.003, 0.02, 0.5, 3, 1e9];
    for (let i = 0; i < 2000; i++) values.push(((i * 7919) % 1000) / 997);
    for (const v of values) {
      fast.observe(v);
      reference.observe(v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const series = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({ ...m, values: m.values.map((v) => ({ value: v.value, labels: v.labels, metricName: (v as { metricName?: string }).metricName })) }));
    expect(await series(ours)).toEqual(await series(theirs));
    ours.resetMetrics();
    theirs.resetMetrics();
    fast.observe(0.002);
    reference.observe(0.002);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('ignores non-finite values instead of throwing on the data path', async () => {
    const registry = new Registry();
    const h = new WindowHistogram('t_seconds', 'test', buckets, registry);
    h.observe(Number.NaN);
    h.observe(Number.POSITIVE_INFINITY);
    h.observe(0.003);
    const text = await registry.metrics();
    expect(text).toContain('t_seconds_count 1\n');
    expect(text).toContain('t_seconds_bucket{le="0.005"} 1\n');
    expect(text).toContain('t_seconds_bucket{le="0.0025"} 0\n');
  });

  it('is how the daemon exports ingest→decision latency', async () => {
    const metrics = new SentinelMetrics();
    metrics.ingestToDecision.observe(0.004);
    metrics.ingestToDecision.observe(0.2);
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE sentinel_ingest_to_decision_seconds histogram');
    expect(text).toContain('sentinel_ingest_to_decision_seconds_bucket{le="0.005"} 1\n');
    expect(text).toContain('sentinel_ingest_to_decision_seconds_bucket{le="+Inf"} 2\n');
    expect(text).toContain('sentinel_ingest_to_decision_seconds_count 2\n');
  });
});
