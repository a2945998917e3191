/**
 * The daemon's per-message steps in isolation (same process, no broker), against the baseline's only
 * step, JSON.parse: where the daemon's extra CPU per message goes.
 */
import { Histogram, Registry } from 'prom-client';
import { PayloadParser } from '../../src/ingest/payload.js';
import { compileSubscription } from '../../src/ingest/topic.js';
import type { Reading } from '../../src/ingest/reading.js';
import { WindowHistogram } from '../../src/observe/window-histogram.js';
import { WindowStore } from '../../src/window/window-store.js';
import type { BenchContext } from '../context.js';
import { TelemetrySource } from '../lib/telemetry.js';

export interface HotpathStep {
  step: string;
  nsPerMessage: number;
}

const CHANNELS = ['vibration', 'current', 'pressure', 'temperature', 'flow'];

export async function runHotpath(ctx: BenchContext): Promise<HotpathStep[]> {
  const streams = 1000;
  const rounds = 100;
  const source = new TelemetrySource('json-values', streams, rounds, 5);
  const count = streams * rounds;
  const topics = Array.from({ length: streams }, (_, s) => `bench/hot/r0/s${s}/telemetry`);
  const payloads = Array.from({ length: count }, (_, k) => Buffer.from(source.payload(k % streams, Math.floor(k / streams), 1_700_000_000_000 + Math.floor(k / streams) * 1000)));
  const rule = compileSubscription({ topic: 'bench/hot/+/+/telemetry', format: 'json-values', qos: 1 }, 0);
  const parser = new PayloadParser(CHANNELS, 16_384);
  const generalParser = new PayloadParser(CHANNELS, 16_384, undefined, false);
  const registry = new Registry();
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  const windowHistogram = new WindowHistogram('bench_window_seconds', 'bench', buckets, registry);
  const promHistogram = new Histogram({ name: 'bench_prom_seconds', help: 'bench', buckets, registers: [registry] });
  const readings: Reading[] = [];
  const now = Date.now();
  const seconds = Math.max(0.5, ctx.settings.modelSeconds / 2);
  let sink = 0;

  const steps: HotpathStep[] = [];
  const time = (step: string, body: (k: number) => void): void => {
    for (let k = 0; k < count; k++) body(k);
    let done = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000) {
      for (let k = 0; k < count; k++) body(k);
      done += count;
    }
    const ns = ((performance.now() - start) * 1e6) / done;
    steps.push({ step, nsPerMessage: ns });
    ctx.log(`  ${step}: ${ns.toFixed(0)} ns/message`);
  };

  time('baseline: JSON.parse(payload.toString())', (k) => {
    sink += (JSON.parse((payloads[k] as Buffer).toString()) as { ts: number }).ts;
  });
  time('daemon: topic rule match (src/ingest/topic.ts)', (k) => {
    sink += rule.match(topics[k % streams] as string)?.streamId.length ?? 0;
  });
  for (const payload of payloads) {
    const result = parser.parse('json-values', 'r0/s1', null, payload, now, 0);
    if (result.ok) readings.push(result.reading);
  }
  time('daemon: PayloadParser.parse json-values (src/ingest/telemetry-scanner.ts, byte scanner)', (k) => {
    if (parser.parse('json-values', 'r0/s1', null, payloads[k] as Buffer, now, 0).ok) sink++;
  });
  time('  for comparison: the general path it falls back to (JSON.parse + zod)', (k) => {
    if (generalParser.parse('json-values', 'r0/s1', null, payloads[k] as Buffer, now, 0).ok) sink++;
  });
  time('daemon: ingest→decision latency observe (src/observe/window-histogram.ts)', (k) => {
    windowHistogram.observe((k % 100) / 10_000);
  });
  time('  for comparison: prom-client Histogram.observe', (k) => {
    promHistogram.observe((k % 100) / 10_000);
  });
  const makeStore = (): WindowStore =>
    new WindowStore({ window: 20, channels: 5, maxStreams: 1_000_000, staleAfterMs: 60_000, idleTtlMs: 3_600_000, normalization: { kind: 'graph' } });
  let store = makeStore();
  let round = 0;
  const streamIds = Array.from({ length: streams }, (_, s) => `r0/s${s}`);
  const baseTs = readings.map((r) => r.ts);
  readings.forEach((r, k) => (r.streamId = streamIds[k % streams] as string));
  time('daemon: WindowStore.push (src/window/window-store.ts)', (k) => {
    // Fresh record times on every pass so no reading is a duplicate.
    if (k === 0) {
      round++;
      if (round % 50 === 0) store = makeStore();
    }
    const r = readings[k] as Reading;
    r.ts = (baseTs[k] as number) + round * 1e9;
    const outcome = store.push(r, 0);
    if (typeof outcome === 'number') sink++;
  });
  if (sink === 42) ctx.log('');
  return steps;
}
