import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { apiConfigSchema, type ApiConfig } from '../../src/api/config.js';
import { ScoreApi, type ApiModelProvider } from '../../src/api/score-api.js';
import { modelsResponseSchema, scoreResponseSchema } from '../../src/api/wire.js';
import type { Scorer } from '../../src/model/scorer.js';
import { createLogger } from '../../src/observe/log.js';
import { defaultManifest, FakeScorer, rows } from '../support/api-fake.js';

const started: ScoreApi[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const api of started.splice(0)) await api.stop(AbortSignal.timeout(2_000));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function startApi(overrides: Partial<ApiConfig> = {}, models?: Array<{ name: string; scorer: Scorer | null }>) {
  const scorer = new FakeScorer();
  const list = models ?? [{ name: 'pump', scorer }];
  const provider: ApiModelProvider = { models: () => list };
  const config = apiConfigSchema.parse({ enabled: true, port: 0, ...overrides });
  const registry = new Registry();
  const api = new ScoreApi(config, registry, createLogger('silent'), provider, { maxBatch: 64 });
  await api.start();
  started.push(api);
  const url = `http://127.0.0.1:${api.port}`;
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { api, scorer, url, post, registry, list };
}

describe('scoring API', () => {
  it('is off by default and listens nowhere', async () => {
    const config = apiConfigSchema.parse(undefined);
    expect(config).toMatchObject({ enabled: false, host: '127.0.0.1', port: 9465 });
    const api = new ScoreApi(config, new Registry(), createLogger('silent'), { models: () => [] }, { maxBatch: 8 });
    await api.start();
    expect(api.port).toBe(0);
    await api.stop(AbortSignal.timeout(100));
  });

  it('rejects unknown config keys and inconsistent bounds', () => {
    expect(apiConfigSchema.safeParse({ enable: true }).success).toBe(false);
    const r = apiConfigSchema.safeParse({ maxWindowsPerRequest: 100, maxQueuedWindows: 10 });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('maxQueuedWindows');
  });

  it('scores windows given as rows and by channel name alike', async () => {
    const { post, scorer } = await startApi();
    const a = rows(1);
    a[3] = [1, 2, 3, 4, 5];
    const byName = Object.fromEntries(defaultManifest.channels.map((name, c) => [name, a.map((row) => row[c] as number)]));
    const res = await post({ model: 'pump', windows: [{ values: a }, { channels: byName }] });
    expect(res.status).toBe(200);
    const body = scoreResponseSchema.parse(await res.json());
    expect(body.model).toEqual({ name: 'pump', manifestName: 'default', version: defaultManifest.version, provider: 'cpu' });
    expect(body.thresholds).toEqual({ raise: defaultManifest.policy.raiseThreshold, clear: defaultManifest.policy.clearThreshold });
    expect(body.results).toHaveLength(2);
    expect(body.results[0]?.score).toBe(19 * 5 + 15);
    expect(body.results[1]).toEqual(body.results[0]);
    expect(body.results[0]?.contributions).toEqual({ vibration: 20, current: 21, pressure: 22, temperature: 23, flow: 24 });
    expect(body.results[0]?.atOrAboveRaise).toBe(true);
    expect(scorer.runs).toEqual([2]);
  });

  it('answers below the raise threshold with atOrAboveRaise false, and takes the only model when none is named', async () => {
    const { post } = await startApi();
    const res = await post({ windows: [{ values: rows(0) }] });
    const body = scoreResponseSchema.parse(await res.json());
    expect(body.results[0]).toMatchObject({ score: 0, atOrAboveRaise: false });
  });

  it('lists the models, loaded or not', async () => {
    const { url } = await startApi({}, [
      { name: 'pump', scorer: new FakeScorer() },
      { name: 'compressor', scorer: null },
    ]);
    const res = await fetch(`${url}/v1/models`);
    expect(res.status).toBe(200);
    const body = modelsResponseSchema.parse(await res.json());
    expect(body.models[0]).toEqual({
      name: 'pump',
      loaded: true,
      manifestName: 'default',
      version: defaultManifest.version,
      provider: 'cpu',
      channels: [...defaultManifest.channels],
      window: 20,
      normalization: 'graph',
      thresholds: { raise: defaultManifest.policy.raiseThreshold, clear: defaultManifest.policy.clearThreshold },
    });
    expect(body.models[1]).toMatchObject({ name: 'compressor', loaded: false, version: null });
  });

  it('names the field path of every validation error', async () => {
    const { post } = await startApi();
    const cases: Array<[unknown, number, string]> = [
      [{ model: 'pump', windows: [{ values: rows() }, { values: rows() }, { values: rows().map((r, i) => (i === 5 ? [1, 'x', 3, 4, 5] : r)) }] }, 400, 'windows[2].values[5][1]: must be a finite number'],
      [{ windows: [{ values: rows().map((r, i) => (i === 1 ? [1, 1e39, 1, 1, 1] : r)) }] }, 400, 'windows[0].values[1][1]: must be a finite number within float32 range'],
      [{ windows: [{ values: rows(), channels: {} }] }, 400, 'windows[0]: give exactly one of'],
      [{ windows: [] }, 400, 'windows: '],
      [{ windows: [{ values: rows() }], extra: 1 }, 400, '(body): '],
      [{ windows: [{ values: rows(1, 19) }] }, 422, 'windows[0].values: has 19 rows, model "pump" has a window of 20'],
      [{ windows: [{ values: rows().map((r, i) => (i === 7 ? [1, 2] : r)) }] }, 422, 'windows[0].values[7]: has 2 values, model "pump" has 5 channels (vibration, current, pressure, temperature, flow)'],
      [{ windows: [{ channels: { vibration: [1] } }] }, 422, 'windows[0].channels.vibration: has 1 values'],
      [{ windows: [{ channels: { 'no such': [1] } }] }, 422, 'windows[0].channels["no such"]: unknown channel'],
      [{ model: 'nope', windows: [{ values: rows() }] }, 404, 'model: no model named "nope" — known: pump'],
      ['{"windows": [', 400, 'body: not valid JSON'],
      [{ windows: [{ values: rows() }], input: 'cooked' }, 400, 'input: '],
    ];
    for (const [body, status, message] of cases) {
      const res = await post(body);
      const text = await res.text();
      expect({ status: res.status, text }).toMatchObject({ status });
      expect(text).toContain(message.replace(/"/g, '\\"'));
    }
  });

  it('refuses raw input for a model with a per-stream baseline, and scores its normalised input', async () => {
    const manifest = { ...defaultManifest, baseline: { version: 1 as const, warmupRows: 10, halfLifeRows: null, clip: 5, minScale: [1, 1, 1, 1, 1] } };
    const { post } = await startApi({}, [{ name: 'pump', scorer: new FakeScorer(manifest) }]);
    const raw = await post({ windows: [{ values: rows() }] });
    expect(raw.status).toBe(422);
    expect(await raw.text()).toContain('input: model \\"pump\\" normalises each stream');
    const ok = await post({ input: 'normalized', windows: [{ values: rows() }] });
    expect(ok.status).toBe(200);
  });

  it('normalises raw input with a zscore manifest as the window store does', async () => {
    const manifest = { ...defaultManifest, normalization: { kind: 'zscore' as const, mean: [1, 1, 1, 1, 1], std: [2, 2, 2, 2, 2] } };
    const { post } = await startApi({}, [{ name: 'pump', scorer: new FakeScorer(manifest) }]);
    const body = scoreResponseSchema.parse(await (await post({ windows: [{ values: rows(3) }] })).json());
    expect(body.results[0]?.score).toBe(100);
    const as = scoreResponseSchema.parse(await (await post({ input: 'normalized', windows: [{ values: rows(3) }] })).json());
    expect(as.results[0]?.score).toBe(300);
  });

  it('asks for the model when several are loaded; 503 with Retry-After while one is not loaded', async () => {
    const { post } = await startApi({}, [
      { name: 'pump', scorer: new FakeScorer() },
      { name: 'compressor', scorer: null },
    ]);
    const res = await post({ windows: [{ values: rows() }] });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('model: required when several models are loaded (pump, compressor)');
    const loading = await post({ model: 'compressor', windows: [{ values: rows() }] });
    expect(loading.status).toBe(503);
    expect(loading.headers.get('retry-after')).toBe('5');
  });

  it('caps the body: 413 by content-length at once, and when a chunked body runs past the cap', async () => {
    const { post, api } = await startApi({ maxBodyBytes: 2_048 });
    const big = await post({ windows: [1, 2, 3].map(() => ({ values: rows(123456.789) })) });
    expect(big.status).toBe(413);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: api.port, method: 'POST', path: '/v1/score', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('{"windows":[');
      // Past the cap, then keep the request open: the answer must come without the end of the body.
      req.write(' '.repeat(4_096));
    });
    expect(status).toBe(413);
  });

  it('caps windows per request', async () => {
    const { post } = await startApi({ maxWindowsPerRequest: 3, maxQueuedWindows: 10 });
    const res = await post({ windows: Array.from({ length: 4 }, () => ({ values: rows() })) });
    expect(res.status).toBe(413);
    expect(await res.text()).toContain('at most 3 per request');
  });

  it('requires the bearer token when a token file is set, and follows its rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'api-token-'));
    dirs.push(dir);
    const file = join(dir, 'token');
    writeFileSync(file, 'first-secret\n');
    const { post, url } = await startApi({ tokenFile: file });
    const none = await post({ windows: [{ values: rows() }] });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="sentinel"');
    const wrong = await post({ windows: [{ values: rows() }] }, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await post({ windows: [{ values: rows() }] }, { authorization: 'Bearer first-secret' })).status).toBe(200);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    writeFileSync(file, 'second-secret-longer');
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await post({ windows: [{ values: rows() }] }, { authorization: 'Bearer first-secret' })).status).toBe(401);
    expect((await post({ windows: [{ values: rows() }] }, { authorization: 'Bearer second-secret-longer' })).status).toBe(200);
    rmSync(file);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await post({ windows: [{ values: rows() }] }, { authorization: 'Bearer second-secret-longer' })).status).toBe(401);
  });

  it('fails to start, naming the file, when the token file is missing', async () => {
    const config = apiConfigSchema.parse({ enabled: true, port: 0, tokenFile: '/nonexistent/token' });
    const api = new ScoreApi(config, new Registry(), createLogger('silent'), { models: () => [] }, { maxBatch: 8 });
    await expect(api.start()).rejects.toThrow(/api.tokenFile \/nonexistent\/token cannot be read/);
  });

  it('coalesces concurrent requests into one model run and bounds the queue with 429', async () => {
    const { post, scorer, registry } = await startApi({ maxQueuedWindows: 12, maxWindowsPerRequest: 4, batchDelayMs: 20 });
    let open!: () => void;
    scorer.gate = new Promise<void>((r) => (open = r));
    const first = post({ windows: [{ values: rows() }] });
    await new Promise((r) => setTimeout(r, 60));
    // The first run is held at the gate; these wait behind it and should share the next run.
    const next = [1, 2, 3].map(() => post({ windows: Array.from({ length: 3 }, () => ({ values: rows() })) }));
    await new Promise((r) => setTimeout(r, 60));
    const refused = await post({ windows: Array.from({ length: 3 }, () => ({ values: rows() })) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    open();
    const statuses = await Promise.all([first, ...next].map(async (p) => (await p).status));
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(scorer.runs).toEqual([1, 9]);
    const text = await registry.metrics();
    expect(text).toContain('sentinel_api_requests_total{route="score",code="429"} 1');
    expect(text).toContain('sentinel_api_windows_scored_total{model="pump"} 10');
    expect(text).toContain('sentinel_api_queued_windows 0');
  });

  it('answers 500 when a model run fails and keeps serving', async () => {
    const { post, scorer } = await startApi();
    scorer.failNext = true;
    expect((await post({ windows: [{ values: rows() }] })).status).toBe(500);
    expect((await post({ windows: [{ values: rows() }] })).status).toBe(200);
  });

  it('uses the scorer the provider names now, per run (hot swap)', async () => {
    const list: Array<{ name: string; scorer: Scorer | null }> = [{ name: 'pump', scorer: new FakeScorer() }];
    const { post } = await startApi({}, list);
    const swapped = new FakeScorer({ ...defaultManifest, version: `sha256:${'1'.repeat(64)}` });
    list[0] = { name: 'pump', scorer: swapped };
    const body = scoreResponseSchema.parse(await (await post({ windows: [{ values: rows() }] })).json());
    expect(body.model.version).toBe(`sha256:${'1'.repeat(64)}`);
    expect(swapped.runs).toEqual([1]);
  });

  it('answers 404/405/415 for what it does not serve', async () => {
    const { url } = await startApi();
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    const get = await fetch(`${url}/v1/score`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await fetch(`${url}/v1/models`, { method: 'DELETE' })).status).toBe(405);
    expect((await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })).status).toBe(415);
  });
});
