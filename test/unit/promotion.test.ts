import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { manifestPathFor } from '../../src/model/manifest.js';
import { dropCandidate, promote, rollback } from '../../src/route/promotion.js';
import { candidatePathFor, previousPathFor } from '../../src/route/route.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

let a: ModelFiles;
let b: ModelFiles;
beforeAll(() => {
  a = trainPumpModel(101, { name: 'pump-a' });
  b = trainPumpModel(202, { name: 'pump-b' });
}, 60_000);

const version = (path: string): string => (JSON.parse(readFileSync(manifestPathFor(path), 'utf8')) as { version: string }).version;

describe('promotion files', () => {
  it('names candidate and previous beside the model', () => {
    expect(candidatePathFor('models/pump.onnx')).toBe('models/pump.candidate.onnx');
    expect(previousPathFor('/m/pump.ONNX')).toBe('/m/pump.previous.onnx');
  });

  it('promote moves the candidate into place and keeps the old model; rollback restores it', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'promote-')), 'pump.onnx');
    placeModel(path, a);
    placeModel(candidatePathFor(path), b);
    expect(await promote(path)).toEqual({ version: b.manifest.version, replaced: a.manifest.version });
    expect(version(path)).toBe(b.manifest.version);
    expect(version(previousPathFor(path))).toBe(a.manifest.version);
    expect(existsSync(candidatePathFor(path)) || existsSync(manifestPathFor(candidatePathFor(path)))).toBe(false);
    expect(await rollback(path)).toEqual({ version: a.manifest.version, replaced: b.manifest.version });
    expect(version(path)).toBe(a.manifest.version);
    await expect(rollback(path)).rejects.toThrow(/no previous model/);
  });

  it('refuses a missing or half-copied candidate and leaves the model alone', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'promote-')), 'pump.onnx');
    placeModel(path, a);
    await expect(promote(path)).rejects.toThrow(/no candidate model/);
    placeModel(candidatePathFor(path), b);
    writeFileSync(candidatePathFor(path), Buffer.from(b.onnx).subarray(0, 100));
    await expect(promote(path)).rejects.toThrow(/does not match its manifest/);
    expect(version(path)).toBe(a.manifest.version);
    expect(existsSync(previousPathFor(path))).toBe(false);
    expect(dropCandidate(path)).toBe(true);
    expect(dropCandidate(path)).toBe(false);
  });

  it('refuses to promote a candidate identical to the model', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'promote-')), 'pump.onnx');
    placeModel(path, a);
    placeModel(candidatePathFor(path), a);
    await expect(promote(path)).rejects.toThrow(/already the model/);
  });
});
