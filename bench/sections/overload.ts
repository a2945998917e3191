/**
 * Overload at QoS 1: the publisher pushes twice the daemon's sustained rate; every message the broker
 * acknowledged must end up queued and scored by the daemon (backpressure, not loss). The broker holds
 * the backlog (our Mosquitto runs with max_queued_messages 0, see lib/mosquitto.ts).
 */
import { readFileSync } from 'node:fs';
import type { BenchContext } from '../context.js';
import { unscoredRows } from '../../src/model/manifest.js';
import { DaemonProcess, awaitSubscribed } from '../lib/daemon.js';
import { daemonConsumer, measure } from '../lib/measure.js';
import { dutyCycle } from '../../test/support/proc.js';
import { probePayload } from './throughput.js';

export interface OverloadResults {
  broker: string;
  targetRate: number;
  publishers: number;
  /** Share of each 100 ms the daemon was allowed to run while the publishers pushed (1 = never paused). */
  duty: number;
  sustainedRate: number | null;
  seconds: number;
  /** Publisher's acknowledged messages/s while pushing. */
  pushRate: number;
  /** Daemon's messages/s over the same push phase. */
  daemonRateWhilePushing: number;
  /** pushRate / daemonRateWhilePushing: how hard the daemon was overloaded (2 = the target). */
  overloadFactor: number;
  /** Backlog the broker held for the daemon when the publisher finished. */
  backlogAtPublisherDone: number;
  acked: number;
  received: number;
  queued: number;
  windowsScored: number;
  windowsExpected: number;
  rejected: number;
  dropped: number;
  backpressureWaits: number;
  /** acked − queued: must be 0. */
  lost: number;
  daemonExitCode: number | null;
}

export async function runOverload(ctx: BenchContext, sustainedRate: number | null): Promise<OverloadResults> {
  const { settings, log } = ctx;
  const broker = settings.brokers[0] ?? 'mosquitto';
  const external = broker === 'mosquitto' ? await ctx.mosquitto() : null;
  const protocolVersion: 4 | 5 = external ? 5 : 4;
  const targetRate = Math.round(2 * (sustainedRate ?? 20_000));
  const unscored = unscoredRows(JSON.parse(readFileSync('models/default.json', 'utf8')) as { window: number; baseline?: { warmupRows: number } });
  const name = 'overload';
  const daemon = await DaemonProcess.start({
    dir: ctx.dir,
    name,
    brokerUrl: external ? external.url : null,
    protocolVersion,
    subscription: { topic: `bench/${name}/+/+/telemetry`, format: 'json-values', qos: 1 },
    alertPrefix: `bench-alerts/${name}`,
  });
  let exitCode: number | null = null;
  try {
    await awaitSubscribed(daemon, protocolVersion, `bench/${name}/probe/p/telemetry`, probePayload());
    const dc = daemonConsumer(daemon);
    const before = await daemon.metrics();
    // One publisher process cannot outrun the daemon on this machine; several side by side can.
    const publishers = settings.overloadPublishers;
    const jobs = Array.from({ length: publishers }, (_, i) => ({
      url: daemon.brokerUrl,
      protocolVersion,
      clientId: `bench-pub-${process.pid}-overload-${i}`,
      qos: 1 as const,
      topicPrefix: `bench/${name}/r${i}`,
      topicSuffix: 'telemetry',
      streams: settings.streams,
      format: 'json-values' as const,
      rate: Math.ceil(targetRate / publishers),
      durationMs: settings.overloadSeconds * 1000,
      window: settings.publisherWindow,
      seed: 2024 + i,
    }));
    const throttle = dutyCycle(daemon.pid, settings.overloadDuty);
    // A backlogged daemon keeps receiving; only a long silence means it is done.
    const run = await measure(dc, external ? external.pid : null, jobs, 10_000, () => throttle.stop()).finally(() => throttle.stop());
    const after = dc.last() ?? (await daemon.metrics());
    const delta = (metric: string): number => after.sum(metric) - before.sum(metric);
    const pushSeconds = run.publisher.elapsedMs / 1000;
    const queued = delta('sentinel_readings_queued_total');
    const windowsExpected = run.publishers.reduce((sum, p) => sum + expectedWindows(p.published, settings.streams, unscored), 0);
    exitCode = await daemon.stop();
    const out: OverloadResults = {
      broker,
      targetRate,
      publishers,
      duty: settings.overloadDuty,
      sustainedRate,
      seconds: settings.overloadSeconds,
      pushRate: run.acked / pushSeconds,
      daemonRateWhilePushing: run.receivedAtPublisherDone / pushSeconds,
      overloadFactor: run.acked / Math.max(1, run.receivedAtPublisherDone),
      backlogAtPublisherDone: run.acked - run.receivedAtPublisherDone,
      acked: run.acked,
      received: run.received,
      queued,
      windowsScored: delta('sentinel_windows_scored_total'),
      windowsExpected,
      rejected: delta('sentinel_readings_rejected_total'),
      dropped: delta('sentinel_readings_dropped_total'),
      backpressureWaits: delta('sentinel_backpressure_waits_total'),
      lost: run.acked - queued,
      daemonExitCode: exitCode,
    };
    log(
      `  ${broker} QoS 1 target ${targetRate} msg/s: pushed ${Math.round(out.pushRate)} msg/s vs daemon ${Math.round(out.daemonRateWhilePushing)} msg/s ` +
        `(×${out.overloadFactor.toFixed(2)}), backlog ${out.backlogAtPublisherDone}; acked ${out.acked}, queued ${queued}, lost ${out.lost}, ` +
        `scored ${out.windowsScored}/${windowsExpected}, backpressure waits ${out.backpressureWaits}`,
    );
    return out;
  } finally {
    if (exitCode === null) await daemon.stop();
  }
}

/** Windows a round-robin publish of `messages` over `streams` completes: each stream's readings minus those that complete none. */
function expectedWindows(messages: number, streams: number, unscored: number): number {
  const perStream = Math.floor(messages / streams);
  const extra = messages % streams;
  return streams * Math.max(0, perStream - unscored) + (perStream + 1 > unscored ? extra : 0);
}
