/**
 * Memory: RSS of the daemon holding 100k active single-channel streams with window 32, scored by a
 * one-channel model trained on the spot with the project's trainer (lib/models.ts). Run twice: as the
 * image runs it (the Dockerfile's NODE_OPTIONS, a V8 heap cap) and with Node's defaults (no cap: V8
 * sizes the heap from the host's memory and lets more garbage pile up between collections).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../context.js';
import { SINE_WINDOW } from '../lib/models.js';
import { DaemonProcess, awaitSubscribed } from '../lib/daemon.js';
import { daemonConsumer, measure } from '../lib/measure.js';
import { memory, sleep } from '../../test/support/proc.js';

export const MEMORY_WINDOW = SINE_WINDOW;

export interface MemoryRun {
  /** "as deployed" (the Dockerfile's NODE_OPTIONS) or "Node defaults". */
  label: string;
  nodeArgs: string[];
  streamsActive: number;
  windowsScored: number;
  idleRssBytes: number;
  rssBytes: number;
  peakRssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  /** (RSS − idle RSS) / streams. */
  bytesPerStream: number;
  rate: number;
}

export interface MemoryResults {
  broker: string;
  streams: number;
  window: number;
  readingsPerStream: number;
  /** [as deployed, Node defaults] */
  runs: MemoryRun[];
}

/** The node flags the image runs the daemon with (ENV NODE_OPTIONS in the Dockerfile). */
export function deployedNodeArgs(): string[] {
  const dockerfile = readFileSync(join(process.cwd(), 'Dockerfile'), 'utf8');
  const found = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile);
  if (!found) throw new Error('Dockerfile sets no NODE_OPTIONS');
  return (found[1] as string).split(/\s+/).filter((a) => a.length > 0);
}

export async function runMemory(ctx: BenchContext): Promise<MemoryResults> {
  const { settings } = ctx;
  const broker = settings.brokers[0] ?? 'mosquitto';
  const modelPath = ctx.sineModel().path;
  const runs = [
    await runOnce(ctx, broker, modelPath, 'as deployed', deployedNodeArgs()),
    await runOnce(ctx, broker, modelPath, 'Node defaults', []),
  ];
  return { broker, streams: settings.memoryStreams, window: MEMORY_WINDOW, readingsPerStream: settings.memoryRounds, runs };
}

async function runOnce(ctx: BenchContext, broker: string, modelPath: string, label: string, nodeArgs: string[]): Promise<MemoryRun> {
  const { settings, log } = ctx;
  const external = broker === 'mosquitto' ? await ctx.mosquitto() : null;
  const protocolVersion: 4 | 5 = external ? 5 : 4;
  const name = `memory-${nodeArgs.length > 0 ? 'capped' : 'defaults'}`;
  const daemon = await DaemonProcess.start({
    nodeArgs,
    dir: ctx.dir,
    name,
    brokerUrl: external ? external.url : null,
    protocolVersion,
    subscription: { topic: `bench/${name}/+/v`, format: 'json-value', qos: 1 },
    modelPath,
    alertPrefix: `bench-alerts/${name}`,
  });
  try {
    await awaitSubscribed(daemon, protocolVersion, `bench/${name}/probe/v`, JSON.stringify({ ts: Date.now(), value: 0 }));
    await sleep(500);
    const idle = memory(daemon.pid);
    const dc = daemonConsumer(daemon);
    const run = await measure(dc, external ? external.pid : null, {
      url: daemon.brokerUrl,
      protocolVersion,
      clientId: `bench-pub-${process.pid}-memory`,
      qos: 1,
      topicPrefix: `bench/${name}`,
      topicSuffix: 'v',
      streams: settings.memoryStreams,
      format: 'json-value',
      messages: settings.memoryStreams * settings.memoryRounds,
      window: settings.publisherWindow,
      seed: 32,
    });
    // sentinel_streams_active is refreshed by the sweep job (every 5 s by default).
    let metrics = await daemon.metrics();
    for (let i = 0; i < 30 && metrics.sum('sentinel_streams_active') < settings.memoryStreams; i++) {
      await sleep(250);
      metrics = await daemon.metrics();
    }
    const mem = memory(daemon.pid);
    const out: MemoryRun = {
      label,
      nodeArgs,
      streamsActive: metrics.sum('sentinel_streams_active'),
      windowsScored: metrics.sum('sentinel_windows_scored_total'),
      idleRssBytes: idle.rssBytes,
      rssBytes: mem.rssBytes,
      peakRssBytes: mem.peakRssBytes,
      heapUsedBytes: metrics.sum('nodejs_heap_size_used_bytes'),
      externalBytes: metrics.sum('nodejs_external_memory_bytes'),
      bytesPerStream: (mem.rssBytes - idle.rssBytes) / settings.memoryStreams,
      rate: run.rate,
    };
    log(
      `  ${label} (${nodeArgs.join(' ') || 'no flags'}): ${out.streamsActive} streams × ${settings.memoryRounds} readings (window ${MEMORY_WINDOW}): RSS ${mb(out.rssBytes)} (idle ${mb(out.idleRssBytes)}, peak ${mb(out.peakRssBytes)}), ` +
        `heap used ${mb(out.heapUsedBytes)}, ${Math.round(out.bytesPerStream)} B/stream, ${out.windowsScored} windows scored, ${Math.round(out.rate)} msg/s`,
    );
    return out;
  } finally {
    await daemon.stop();
  }
}

export function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}
