import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiConfigSchema } from '../../src/api/config.js';
import { ScoreApi } from '../../src/api/score-api.js';
import { packWindows, scoreRequestSchema } from '../../src/api/wire.js';
import { createLogger } from '../../src/observe/log.js';
import { defaultManifest, FakeScorer, rows } from '../support/api-fake.js';

const ANSWERS = new Set([200, 400, 404, 413, 415, 422]);

/** Bodies near the valid shape (where the bugs are) and far from it. */
const nearValid = fc.record(
  {
    model: fc.oneof(fc.constant('pump'), fc.string(), fc.integer(), fc.constant(null)),
    input: fc.oneof(fc.constant('raw'), fc.constant('normalized'), fc.string(), fc.constant({})),
    windows: fc.oneof(
      fc.array(
        fc.oneof(
          fc.record({ values: fc.array(fc.array(fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(null)), { maxLength: 7 }), { maxLength: 22 }) }, { requiredKeys: [] }),
          fc.record({ values: fc.constant(rows()) }),
          fc.record({ channels: fc.dictionary(fc.oneof(fc.constantFrom(...defaultManifest.channels, '__proto__', 'constructor', ''), fc.string()), fc.array(fc.double(), { maxLength: 21 })) }),
          fc.anything(),
        ),
        { maxLength: 5 },
      ),
      fc.anything(),
    ),
  },
  { requiredKeys: [] },
);

const bodies = fc.oneof(
  nearValid.map((b) => JSON.stringify(b) ?? 'null'),
  fc.json(),
  fc.string(),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString('latin1')),
  nearValid.map((b) => (JSON.stringify(b) ?? '').replace(/[0-9]+/, '1e999')),
);

describe('scoring API under hostile bodies', () => {
  it('validation never throws in-process: every body is scored or refused with a path', () => {
    fc.assert(
      fc.property(bodies, (text) => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return;
        }
        const parsed = scoreRequestSchema.safeParse(json);
        if (!parsed.success) {
          expect(parsed.error.issues.length).toBeGreaterThan(0);
          return;
        }
        const packed = packWindows(parsed.data, 'pump', defaultManifest);
        if (packed instanceof Float32Array) {
          expect(packed.length).toBe(parsed.data.windows.length * 100);
          for (const v of packed) expect(Number.isFinite(v)).toBe(true);
        } else expect(packed.length).toBeGreaterThan(0);
      }),
      { numRuns: 3_000, seed: 20261214 },
    );
  });

  let api: ScoreApi;
  beforeAll(async () => {
    const scorer = new FakeScorer();
    api = new ScoreApi(apiConfigSchema.parse({ enabled: true, port: 0, maxBodyBytes: 4_096 }), new Registry(), createLogger('silent'), { models: () => [{ name: 'pump', scorer }] }, { maxBatch: 16 });
    await api.start();
  });
  afterAll(async () => {
    await api.stop(AbortSignal.timeout(2_000));
  });

  it('over HTTP: every hostile body gets a 2xx/4xx answer and the server keeps serving', async () => {
    const url = `http://127.0.0.1:${api.port}/v1/score`;
    await fc.assert(
      fc.asyncProperty(bodies, fc.constantFrom('application/json', 'application/json; charset=utf-8'), async (body, type) => {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
        const text = await res.text();
        expect(ANSWERS.has(res.status), `${res.status} ${text}`).toBe(true);
        if (res.status !== 200) expect(JSON.parse(text)).toHaveProperty('message');
      }),
      { numRuns: 300, seed: 20261214 },
    );
    const ok = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ windows: [{ values: rows() }] }) });
    expect(ok.status).toBe(200);
    const metrics = await api.metrics.requests.get();
    expect(metrics.values.find((v) => v.labels.code === '500')?.value).toBe(0);
  });
});
