/** A model session shared by the daemon's batches and the scoring API is freed only once no run uses it. */
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/model/scorer.js';
import { DEFAULT_MODEL } from '../support/model.js';

describe('scorer release', () => {
  it('waits for the runs in progress, then refuses new ones with a clear error', async () => {
    const scorer = await loadModel(DEFAULT_MODEL, { executionProviders: ['cpu'], intraOpThreads: 1, warmupRuns: 1, maxBatch: 1024 });
    const size = scorer.manifest.window * scorer.manifest.channels.length;
    const input = new Float32Array(1024 * size).fill(1);
    // Several runs in flight (as the batcher's and the API's can be) when a hot swap releases the model.
    const runs = [scorer.score(input, 1024), scorer.score(input, 512), scorer.score(input, 1024)];
    const released = scorer.release();
    const outputs = await Promise.all(runs);
    expect(outputs.map((o) => o.scores.length)).toEqual([1024, 512, 1024]);
    await released;
    await expect(scorer.score(input, 1)).rejects.toThrow(/was replaced; score with the current one/);
    // Releasing twice is harmless.
    await scorer.release();
  });
});
