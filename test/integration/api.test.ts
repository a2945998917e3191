/** The scoring API over real HTTP against the real default ONNX model: same scores as the scorer, coalescing, latency per window. */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiConfigSchema } from '../../src/api/config.js';
import { ScoreApi } from '../../src/api/score-api.js';
import { scoreResponseSchema, type ScoreResponse } from '../../src/api/wire.js';
import { loadModel, type Scorer } from '../../src/model/scorer.js';
import { createLogger } from '../../src/observe/log.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';

const MAX_BATCH = 256;
let scorer: Scorer;
let api: ScoreApi;
let registry: Registry;
let url: string;

/**
 * `count` windows of 20 rows from the pump simulator, the fourth with a spike on pressure, normalised as the
 * window store would for a stream whose baseline sits at the training data's mean and spread.
 */
function windows(count: number, seed: number): number[][][] {
  const sim = new PumpSimulator({ seed, faults: [{ kind: 'spike', channel: 2, start: 60, length: 20 }] });
  const { mean, std } = scorer.manifest.training.stats as { mean: number[]; std: number[] };
  const out: number[][][] = [];
  for (let w = 0; w < count; w++) {
    const rows: number[][] = [];
    for (let r = 0; r < 20; r++) rows.push(sim.next().values.map((v, c) => (v - (mean[c] as number)) / (std[c] as number)));
    out.push(rows);
  }
  return out;
}

function flat(ws: number[][][]): Float32Array {
  return Float32Array.from(ws.flat(2));
}

/** The default model normalises each stream by its own baseline, so a request sends normalised windows ((reading − location) / scale). */
async function post(ws: number[][][]): Promise<ScoreResponse> {
  const res = await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'pump', input: 'normalized', windows: ws.map((values) => ({ values })) }) });
  expect(res.status).toBe(200);
  return scoreResponseSchema.parse(await res.json());
}

async function histogram(name: string): Promise<{ sum: number; count: number }> {
  const text = await registry.getSingleMetricAsString(name);
  const read = (suffix: string): number => Number(new RegExp(`^${name}_${suffix} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { sum: read('sum'), count: read('count') };
}

beforeAll(async () => {
  scorer = await loadModel('models/default.onnx', { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 2, maxBatch: MAX_BATCH });
  registry = new Registry();
  const config = apiConfigSchema.parse({ enabled: true, port: 0, maxQueuedWindows: 4_096, maxWindowsPerRequest: 256, maxConnections: 64, maxConnectionsPerClient: 64 });
  api = new ScoreApi(config, registry, createLogger('silent'), { models: () => [{ name: 'pump', scorer }] }, { maxBatch: MAX_BATCH });
  await api.start();
  url = `http://127.0.0.1:${api.port}`;
});

afterAll(async () => {
  await api?.stop(AbortSignal.timeout(5_000));
  await scorer?.release();
});

describe('scoring API with the default ONNX model', () => {
  it('refuses raw readings for the default model: its per-stream baseline is not in the request', async () => {
    expect(scorer.manifest.baseline).toBeDefined();
    const res = await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'pump', windows: windows(1, 3).map((values) => ({ values })) }) });
    expect(res.status).toBe(422);
    expect(await res.text()).toContain('normalises each stream by the baseline');
  });

  it('answers exactly the scores and contributions the scorer gives for the same windows', async () => {
    const ws = windows(8, 7);
    const body = await post(ws);
    const direct = await scorer.score(flat(ws), ws.length);
    const scores = Array.from(direct.scores);
    expect(body.results.map((r) => r.score)).toEqual(scores);
    const channels = scorer.manifest.channels;
    body.results.forEach((r, i) => {
      expect(r.contributions).toEqual(Object.fromEntries(channels.map((c, k) => [c, direct.contributions?.[i * channels.length + k]])));
      expect(r.atOrAboveRaise).toBe((scores[i] as number) >= scorer.manifest.policy.raiseThreshold);
    });
    expect(body.model).toMatchObject({ name: 'pump', manifestName: 'default', version: scorer.manifest.version, provider: 'cpu' });
    // The spike (rows 60–79 = window 3) raises; the healthy windows do not.
    expect(body.results[3]?.atOrAboveRaise).toBe(true);
    expect(body.results[0]?.atOrAboveRaise).toBe(false);
  });

  it('measures latency per window: one window per request, then concurrent clients coalesced into shared runs', async () => {
    const single = windows(200, 11);
    for (const w of single.slice(0, 20)) await post([w]);
    let t0 = performance.now();
    for (const w of single) {
      const body = await post([w]);
      expect(body.results).toHaveLength(1);
    }
    const sequentialMs = performance.now() - t0;

    const before = await histogram('sentinel_api_batch_windows');
    const clients = 32;
    const perRequest = 4;
    const rounds = 10;
    const sets = Array.from({ length: clients }, (_, c) => windows(perRequest, 100 + c));
    const expected = await Promise.all(sets.map(async (ws) => Array.from((await scorer.score(flat(ws), ws.length)).scores)));
    t0 = performance.now();
    await Promise.all(
      sets.map(async (ws, c) => {
        for (let r = 0; r < rounds; r++) {
          const body = await post(ws);
          // Another batch composition may round differently in the last float32 place.
          body.results.forEach((res, i) => expect(res.score).toBeCloseTo(expected[c]?.[i] as number, 3));
        }
      }),
    );
    const concurrentMs = performance.now() - t0;
    const after = await histogram('sentinel_api_batch_windows');
    const runs = after.count - before.count;
    const scored = after.sum - before.sum;
    expect(scored).toBe(clients * perRequest * rounds);
    const figures = {
      sequential: { requests: single.length, windowsPerRequest: 1, msPerWindow: +(sequentialMs / single.length).toFixed(3) },
      concurrent: {
        clients,
        windowsPerRequest: perRequest,
        requests: clients * rounds,
        windows: scored,
        modelRuns: runs,
        windowsPerRun: +(scored / runs).toFixed(1),
        msPerWindow: +(concurrentMs / scored).toFixed(3),
        windowsPerSecond: Math.round((scored / concurrentMs) * 1000),
      },
    };
    console.log(`API ${JSON.stringify(figures)}`);
    // Coalescing happened: fewer model runs than requests.
    expect(runs).toBeLessThan(clients * rounds);
  });
});
