/** Models for the swap fault tests (trained on seeded simulator data), placed the way an operator ships them, and RSS probes. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MqttClient } from 'mqtt';
import { parseTable } from '../../src/offline/data/table.js';
import type { Manifest } from '../../src/model/manifest.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import type { Family } from '../../src/offline/train/detector.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import { writeModelFiles } from '../../src/offline/train/write-model.js';
import { scoredWindows } from './model.js';
import { sleep } from './proc.js';

export interface ModelFiles {
  onnx: Uint8Array;
  manifest: Manifest;
}

/** A pump model (5 channels, window 20 unless told) fitted on simulator data of `seed`: another seed, another version. */
export function trainPumpModel(seed: number, opts: { window?: number; channels?: string[]; name?: string; family?: Family } = {}): ModelFiles {
  const source = `simulator seed=${seed}`;
  const table = parseTable(Buffer.from(simulateCsv({ seed, rows: 1500 }), 'utf8'), source);
  const trained = trainModel(table, {
    window: opts.window ?? 20,
    channels: opts.channels,
    name: opts.name ?? 'pump',
    source,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...(opts.family === undefined ? {} : { detector: { family: opts.family } }),
  });
  return { onnx: trained.onnx, manifest: trained.manifest };
}

/** Garbage bytes with a manifest whose version is their hash: complete, but not an ONNX model. */
export function corruptModel(like: ModelFiles): ModelFiles {
  const onnx = new Uint8Array(4096);
  for (let i = 0; i < onnx.length; i++) onnx[i] = (i * 7919 + 13) % 251;
  const version = `sha256:${createHash('sha256').update(onnx).digest('hex')}`;
  return { onnx, manifest: { ...like.manifest, name: 'corrupt', version } };
}

/** Ships a model as an operator would: both files to temp names, then rename the .onnx, then the manifest. */
export function placeModel(modelPath: string, model: ModelFiles): void {
  writeModelFiles(modelPath, model.onnx, model.manifest);
}

/** Publishes `rows` healthy rows on each stream (one per stream per step, QoS 1); `onRow` runs before each step. */
export class SteadyStream {
  private readonly sims: PumpSimulator[];
  rows = 0;

  constructor(
    private readonly client: MqttClient,
    private readonly topics: string[],
    seed = 11,
  ) {
    this.sims = topics.map((_, i) => new PumpSimulator({ seed: seed + i }));
  }

  /** One row on every stream, awaiting every PUBACK. */
  async step(): Promise<void> {
    await Promise.all(
      this.sims.map((sim, i) => {
        const r = sim.next();
        const values = Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]]));
        return this.client.publishAsync(this.topics[i] as string, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
      }),
    );
    this.rows++;
  }

  /** Windows the daemon must have scored so far with this model: every full window of every stream after its baseline's warm-up, once. */
  expectedWindows(manifest: Pick<Manifest, 'window' | 'baseline'>): number {
    return this.topics.length * scoredWindows(manifest, this.rows);
  }
}

let gcFn: (() => void) | null | undefined;

/** global.gc when the process has it, else one obtained at run time (V8 flag + a fresh context); null if neither works. */
export function collector(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return (gcFn = g);
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    gcFn = typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** This process's RSS in MB: after a full GC when one is available, the median of five samples either way. */
export async function settledRssMb(): Promise<number> {
  const gc = collector();
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    gc?.();
    await sleep(20);
    samples.push(process.memoryUsage().rss / 2 ** 20);
  }
  samples.sort((a, b) => a - b);
  return samples[2] as number;
}

/** VmRSS of another process in MB, from /proc (null once it is gone). */
export function processRssMb(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
