/**
 * The daemon's per-message steps in isolation (same process, no broker), against the baseline's only
 * step, JSON.parse: where the daemon's extra CPU per message goes.
 */
import { Counter, Registry } from 'prom-client';
import { PayloadParser, multiValuePayloadSchema } from '../../src/ingest/payload.js';
import { compileRule } from '../../src/ingest/topic.js';
import type { Reading } from '../../src/ingest/reading.js';
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
  const rule = compileRule({ topic: 'bench/hot/+/+/telemetry', format: 'json-values', qos: 1 }, 0);
  const parser = new PayloadParser(CHANNELS, 16_384);
  const registry = new Registry();
  const counter = new Counter({ name: 'bench_total', help: 'bench', registers: [registry] });
  const labelled = new Counter({ name: 'bench_labelled_total', help: 'bench', labelNames: ['subscription'], registers: [registry] }).labels('bench/hot/+/+/telemetry');
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
  time('daemon: PayloadParser.parse json-values (src/ingest/payload.ts, JSON.parse + zod)', (k) => {
    const result = parser.parse('json-values', 'r0/s1', null, payloads[k] as Buffer, now, 0);
    if (result.ok && readings.length < count) readings.push(result.reading);
  });
  const parsed = payloads.map((p) => JSON.parse(p.toString()) as unknown);
  time('  of which: zod multiValuePayloadSchema.safeParse on parsed JSON', (k) => {
    if (multiValuePayloadSchema.safeParse(parsed[k]).success) sink++;
  });
  time('daemon: two prom-client counter inc() (received + queued)', () => {
    labelled.inc();
    counter.inc();
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
