import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MicroBatcher, type BatchResult } from '../../src/batch/micro-batcher.js';
import type { Reading } from '../../src/ingest/reading.js';
import { loadModel, type Scorer } from '../../src/model/scorer.js';
import { WindowStore, type StreamSlot } from '../../src/window/window-store.js';
import { trainSineModel } from '../support/model.js';

let scorer: Scorer;
beforeAll(async () => {
  scorer = await loadModel(trainSineModel(4), { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 1, maxBatch: 8 });
});
afterAll(async () => scorer.release());

function setup(maxSize: number, maxDelayMs: number) {
  const windows = new WindowStore({ window: 4, channels: 1, maxStreams: 100, staleAfterMs: 1e9, idleTtlMs: 1e9, normalization: { kind: 'graph' } });
  const results: Array<{ ids: string[]; scores: number[] }> = [];
  let capacityCalls = 0;
  const batcher = new MicroBatcher(scorer, windows, { maxSize, maxDelayMs }, {
    onScored: ({ batch, output }: BatchResult) => results.push({ ids: batch.streamIds.slice(0, batch.size), scores: Array.from(output.scores) }),
    onFailed: (_b, err) => {
      throw err;
    },
    onCapacity: () => capacityCalls++,
  });
  /** Fills a stream's window with 4 values starting at v and returns it. */
  const ready = (id: string, v: number): StreamSlot => {
    let out: unknown;
    for (let i = 0; i < 4; i++) {
      const r: Reading = { streamId: id, ts: i, tsFromPayload: true, receivedAt: 0, channel: 0, value: v + i * 0.1, values: null };
      out = windows.push(r, 0);
    }
    return out as StreamSlot;
  };
  return { batcher, results, ready, capacity: () => capacityCalls };
}

describe('micro-batcher', () => {
  it('dispatches a full batch at once, one run for all its windows', async () => {
    const { batcher, results, ready } = setup(4, 10_000);
    for (let i = 0; i < 4; i++) batcher.add(ready(`s${i}`, i));
    await batcher.drain();
    expect(results).toHaveLength(1);
    expect(results[0]?.ids).toEqual(['s0', 's1', 's2', 's3']);
  });

  it('dispatches a partial batch after maxDelayMs', async () => {
    const { batcher, results, ready } = setup(64, 20);
    batcher.add(ready('only', 0.5));
    expect(results).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(results).toHaveLength(1);
    expect(results[0]?.ids).toEqual(['only']);
  });

  it('gives the same scores whatever the batch size', async () => {
    const a = setup(1, 0);
    const b = setup(8, 10_000);
    for (let i = 0; i < 8; i++) {
      a.batcher.add(a.ready(`s${i}`, i / 3));
      await a.batcher.drain();
      b.batcher.add(b.ready(`s${i}`, i / 3));
    }
    await b.batcher.drain();
    const single = a.results.flatMap((r) => r.scores);
    const batched = b.results.flatMap((r) => r.scores);
    expect(single).toHaveLength(8);
    for (let i = 0; i < 8; i++) expect(batched[i]).toBeCloseTo(single[i] as number, 5);
  });

  it('stops accepting when one batch runs, one waits and one is full; resumes after', async () => {
    const { batcher, results, ready, capacity } = setup(2, 10_000);
    let added = 0;
    while (batcher.canAccept()) {
      batcher.add(ready(`s${added}`, added));
      added++;
    }
    expect(added).toBe(6);
    await batcher.drain();
    expect(results.map((r) => r.ids.length)).toEqual([2, 2, 2]);
    expect(capacity()).toBeGreaterThanOrEqual(3);
    expect(batcher.canAccept()).toBe(true);
  });
});
