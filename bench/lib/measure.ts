/**
 * One measured run: a publisher floods (or paces) messages at a consumer — the baseline subscriber or
 * the daemon — while we sample the consumer's count and read the CPU time of every process involved.
 */
import { Agent, type PublisherJob, type PublisherResult, type SubscriberJob, type SubscriberStats } from './agent.js';
import type { DaemonProcess } from './daemon.js';
import type { MetricsSnapshot } from './prometheus.js';
import { cpuSeconds, sleep } from '../../test/support/proc.js';

export interface Consumer {
  pid: number;
  /** Messages the consumer has taken in so far. */
  count(): Promise<number>;
  /** True once nothing is left in flight inside the consumer (the daemon's queue and batches). */
  idle(): Promise<boolean>;
}

export interface RunMeasurement {
  published: number;
  acked: number;
  received: number;
  /** Acknowledged by the broker but never received (QoS 1 must be 0). */
  lost: number;
  /** Steady-state messages/s: the slope between 10 % and 90 % of the messages received. */
  rate: number;
  /** Messages/s from the first publish to the last message received. */
  overallRate: number;
  publisherRate: number;
  cpuSeconds: number;
  cpuPer100k: number;
  brokerCpuPer100k: number | null;
  publisherCpuPer100k: number;
  /** Messages the consumer had received when the publisher's last publish was acknowledged. */
  receivedAtPublisherDone: number;
  publisher: PublisherResult;
  /** Each publisher's own result, in job order. */
  publishers: PublisherResult[];
}

const POLL_MS = 250;

export async function startPublisher(job: PublisherJob): Promise<Agent<PublisherJob, never, PublisherResult>> {
  const publisher = new Agent<PublisherJob, never, PublisherResult>('publisher');
  await publisher.prepare(job);
  return publisher;
}

/** Sums the results of several publishers run side by side (elapsed = the longest). */
function combine(results: PublisherResult[]): PublisherResult {
  return {
    published: results.reduce((n, r) => n + r.published, 0),
    acked: results.reduce((n, r) => n + r.acked, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
    maxLag: Math.max(...results.map((r) => r.maxLag)),
    faults: results.flatMap((r) => r.faults),
    alerts: {
      raised: results.reduce((n, r) => n + r.alerts.raised, 0),
      resolved: results.reduce((n, r) => n + r.alerts.resolved, 0),
    },
  };
}

/** Runs the publishers (each its own process) to completion against a consumer that is already subscribed. */
export async function measure(
  consumer: Consumer,
  brokerPid: number | null,
  jobs: PublisherJob | PublisherJob[],
  quietMs = 1500,
  onPublishersDone?: () => void,
): Promise<RunMeasurement> {
  const list = Array.isArray(jobs) ? jobs : [jobs];
  const publishers = await Promise.all(list.map((job) => startPublisher(job)));
  try {
    const base = await consumer.count();
    const cpu0 = cpuSeconds(consumer.pid);
    const broker0 = brokerPid === null ? 0 : cpuSeconds(brokerPid);
    const pub0 = publishers.reduce((sum, p) => sum + cpuSeconds(p.pid), 0);
    const t0 = performance.now();
    for (const p of publishers) p.go();
    let result: PublisherResult | null = null;
    let each: PublisherResult[] = [];
    const done = Promise.all(publishers.map((p) => p.result())).then((all) => {
      each = all;
      onPublishersDone?.();
      return (result = combine(all));
    });
    const samples: Array<{ t: number; n: number }> = [{ t: 0, n: 0 }];
    let lastChange = t0;
    let lastN = 0;
    let atPublisherDone = -1;
    const expected = list.reduce((sum, job) => sum + (job.messages ?? 0), 0);
    const deadline = t0 + 120_000 + expected / 2;
    for (;;) {
      // Once the publishers are done, `done` is settled: keep the pace, or the polling itself would load the consumer.
      await (result === null ? Promise.race([done, sleep(POLL_MS)]) : sleep(POLL_MS));
      const n = (await consumer.count()) - base;
      const now = performance.now();
      samples.push({ t: now - t0, n });
      if (n !== lastN) {
        lastN = n;
        lastChange = now;
      }
      const finished = result as PublisherResult | null;
      if (finished !== null && atPublisherDone < 0) atPublisherDone = n;
      if (finished !== null && (n >= finished.acked || now - lastChange > quietMs)) break;
      if (now > deadline) throw new Error(`run did not finish: ${n} of ${expected || 'the paced'} messages received`);
    }
    const tLast = lastChange - t0;
    while (!(await consumer.idle())) await sleep(POLL_MS);
    const cpu = cpuSeconds(consumer.pid) - cpu0;
    const brokerCpu = brokerPid === null ? null : cpuSeconds(brokerPid) - broker0;
    const pubCpu = publishers.reduce((sum, p) => sum + cpuSeconds(p.pid), 0) - pub0;
    const pub = (await done) as PublisherResult;
    const received = lastN;
    const per100k = (seconds: number): number => (seconds / Math.max(1, received)) * 100_000;
    return {
      published: pub.published,
      acked: pub.acked,
      received,
      lost: Math.max(0, pub.acked - received),
      rate: steadyRate(samples, received),
      overallRate: received / (tLast / 1000),
      publisherRate: pub.acked / (pub.elapsedMs / 1000),
      cpuSeconds: cpu,
      cpuPer100k: per100k(cpu),
      brokerCpuPer100k: brokerCpu === null ? null : per100k(brokerCpu),
      publisherCpuPer100k: per100k(pubCpu),
      receivedAtPublisherDone: atPublisherDone,
      publisher: pub,
      publishers: each,
    };
  } finally {
    for (const p of publishers) p.kill();
  }
}

/**
 * Publishes the first `rounds` readings of every stream of the jobs and waits until the consumer has
 * taken them and gone idle, so every stream's window is full: from then on each reading completes a
 * window, as with long-lived sensors. Returns the jobs that carry on from there (same data, later
 * record times); with rounds ≤ 0, the jobs unchanged.
 */
export async function fillWindows(consumer: Consumer, jobs: PublisherJob[], rounds: number): Promise<PublisherJob[]> {
  if (rounds <= 0) return jobs;
  const measured = jobs.map((job) => ({
    ...job,
    firstRound: rounds,
    baseTs: Date.now() - (rounds + Math.ceil((job.messages ?? 0) / job.streams)) * 1000,
  }));
  await measure(
    consumer,
    null,
    measured.map((job) => ({ ...job, clientId: `${job.clientId}-fill`, firstRound: 0, messages: job.streams * rounds })),
  );
  return measured;
}

/** Slope of the received count between the 10 % and 90 % marks, each interpolated between samples. */
function steadyRate(samples: Array<{ t: number; n: number }>, total: number): number {
  const at = (target: number): number => {
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1] as { t: number; n: number };
      const b = samples[i] as { t: number; n: number };
      if (b.n >= target) return b.n === a.n ? b.t : a.t + ((b.t - a.t) * (target - a.n)) / (b.n - a.n);
    }
    return Number.NaN;
  };
  const lo = at(0.1 * total);
  const hi = at(0.9 * total);
  return (0.8 * total) / ((hi - lo) / 1000);
}

/** The baseline subscriber as a consumer. */
export async function startBaseline(job: SubscriberJob): Promise<{ consumer: Consumer; agent: Agent<SubscriberJob, SubscriberStats, SubscriberStats> }> {
  const agent = new Agent<SubscriberJob, SubscriberStats, SubscriberStats>('subscriber');
  await agent.prepare(job);
  const consumer: Consumer = {
    pid: agent.pid,
    count: async () => (await agent.stats()).received,
    idle: async () => true,
  };
  return { consumer, agent };
}

/**
 * The daemon as a consumer: counts readings it kept — received minus rejected minus dropped (QoS 0
 * drop policy) — so a daemon that receives fast but drops does not look fast. Idle once the queue is
 * empty and no more windows are being scored.
 */
/**
 * The counters a measured run polls. A full scrape (prom-client's default process metrics: event-loop
 * histogram percentiles, /proc reads) costs milliseconds; polled 4×/s it would bill the daemon for the
 * bench's own measuring, which a 15–30 s Prometheus scrape never does.
 */
export const POLLED_METRICS = [
  'sentinel_messages_received_total',
  'sentinel_readings_rejected_total',
  'sentinel_readings_dropped_total',
  'sentinel_readings_queued_total',
  'sentinel_queue_depth',
  'sentinel_windows_scored_total',
  'sentinel_inference_duration_seconds',
  'sentinel_backpressure_waits_total',
  'sentinel_alerts_published_total',
  'sentinel_batch_size',
  'sentinel_streams_active',
] as const;

export function daemonConsumer(daemon: DaemonProcess): Consumer & { last: () => MetricsSnapshot | null } {
  let last: MetricsSnapshot | null = null;
  let prevScored = -1;
  return {
    pid: daemon.pid,
    last: () => last,
    async count() {
      last = await daemon.metrics(POLLED_METRICS);
      return (
        last.sum('sentinel_messages_received_total') - last.sum('sentinel_readings_rejected_total') - last.sum('sentinel_readings_dropped_total')
      );
    },
    async idle() {
      last = await daemon.metrics(POLLED_METRICS);
      const scored = last.sum('sentinel_windows_scored_total');
      const idle = last.sum('sentinel_queue_depth') === 0 && scored === prevScored;
      prevScored = scored;
      return idle;
    },
  };
}
