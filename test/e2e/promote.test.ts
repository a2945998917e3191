/** `sentinel promote` and `sentinel rollback` as an operator runs them: the built CLI against a config with two models. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { manifestPathFor } from '../../src/model/manifest.js';
import { candidatePathFor, previousPathFor } from '../../src/route/route.js';
import { runCli } from '../support/cli.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

let a: ModelFiles;
let b: ModelFiles;
beforeAll(() => {
  a = trainPumpModel(11, { name: 'pump-a' });
  b = trainPumpModel(12, { name: 'pump-b' });
});

/** A config with models "pump" and "compressor" in a fresh folder; the pump runs `a`, `b` waits as its candidate. */
function setup(): { dir: string; config: string; pump: string; compressor: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-promote-'));
  const pump = join(dir, 'pump.onnx');
  const compressor = join(dir, 'compressor.onnx');
  placeModel(pump, a);
  placeModel(candidatePathFor(pump), b);
  placeModel(compressor, a);
  const config = join(dir, 'sentinel.yaml');
  writeFileSync(
    config,
    stringify({
      model: { name: 'pump', path: pump },
      models: [{ name: 'compressor', path: compressor }],
      subscriptions: [{ topic: 'pumps/+/telemetry' }, { topic: 'compressors/+/telemetry', model: 'compressor' }],
      outbox: { path: join(dir, 'outbox.jsonl') },
    }),
  );
  return { dir, config, pump, compressor };
}

const versionAt = (path: string): string => (JSON.parse(readFileSync(manifestPathFor(path), 'utf8')) as { version: string }).version;

describe('sentinel promote / rollback', () => {
  it('promote puts the candidate in the model\'s place and keeps the old one; rollback brings it back; the other model is untouched', async () => {
    const { config, pump, compressor } = setup();
    const promoted = await runCli(['promote', '--config', config, '--model', 'pump']);
    expect(promoted.stderr).toBe('');
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toContain(`model pump: promoted ${b.manifest.version} at ${pump} (replaced ${a.manifest.version}, kept as ${previousPathFor(pump)})`);
    expect(versionAt(pump)).toBe(b.manifest.version);
    expect(versionAt(previousPathFor(pump))).toBe(a.manifest.version);
    expect(existsSync(candidatePathFor(pump))).toBe(false);
    expect(versionAt(compressor)).toBe(a.manifest.version);

    // Nothing left to promote: a clear error, exit 1, nothing moved.
    const again = await runCli(['promote', '--config', config, '-m', 'pump']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`model pump: cannot promote: no candidate model at ${candidatePathFor(pump)}`);
    expect(versionAt(pump)).toBe(b.manifest.version);

    const back = await runCli(['rollback', '--config', config, '--model', 'pump']);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(`model pump: rolled back to ${a.manifest.version} at ${pump} (replaced ${b.manifest.version})`);
    expect(versionAt(pump)).toBe(a.manifest.version);
    expect(existsSync(previousPathFor(pump))).toBe(false);
  });

  it('with several models it must be told which; an unknown one is named with the known ones (exit 2)', async () => {
    const { config, pump } = setup();
    const unnamed = await runCli(['promote', '--config', config]);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain('this config has several models (pump, compressor): name one with --model');
    const unknown = await runCli(['rollback', '--config', config, '--model', 'pmup']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--model pmup: no such model in the config (models: pump, compressor)');
    expect(versionAt(pump)).toBe(a.manifest.version);
  });

  it('a candidate whose manifest does not match its file is refused and nothing moves', async () => {
    const { config, pump } = setup();
    writeFileSync(candidatePathFor(pump), Buffer.from('half-copied'));
    const refused = await runCli(['promote', '--config', config, '--model', 'pump']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/model pump: cannot promote: candidate model .* does not match its manifest/);
    expect(versionAt(pump)).toBe(a.manifest.version);
    expect(existsSync(previousPathFor(pump))).toBe(false);
  });
});
