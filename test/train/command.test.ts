import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { manifestSchema } from '../../src/model/manifest.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { runTrainCommand } from '../../src/cli/train.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

function workdir(): string {
  return mkdtempSync(join(tmpdir(), 'sentinel-train-'));
}

describe('sentinel train', () => {
  it('writes a baseline-tests model (the default family) and a valid manifest beside it, and prints a summary', async () => {
    const dir = workdir();
    const input = join(dir, 'normal.csv');
    writeFileSync(input, simulateCsv({ seed: 8, rows: 600 }));
    const { io, out, err } = capture();
    const code = await runTrainCommand(['--input', input, '--out', join(dir, 'models', 'pump.onnx'), '--window', '10', '--cooldown', '90'], io);
    expect(code).toBe(0);
    expect(err.some((l) => /100% done/.test(l))).toBe(true);
    // 600 rows − the 100-row warm-up = 500 windows, 75 % of them fit.
    expect(out.join('\n')).toMatch(/trained baseline-tests .* on 600 rows \(a 100-row baseline warm-up, then 375 windows fit, 125 held out\)/);
    const manifest = manifestSchema.parse(JSON.parse(readFileSync(join(dir, 'models', 'pump.json'), 'utf8')));
    expect(manifest.name).toBe('pump');
    expect(manifest.family).toBe('baseline-tests');
    expect(manifest.baseline?.warmupRows).toBe(100);
    expect(manifest.outputs.tests?.names).toEqual(['level', 'spike', 'noise', 'stuck']);
    expect(manifest.window).toBe(10);
    expect(manifest.policy.cooldownMs).toBe(90_000);
    expect(manifest.training.source).toBe('normal.csv');
    const session = await ort.InferenceSession.create(join(dir, 'models', 'pump.onnx'));
    expect(session.outputNames).toEqual(['score', 'contributions', 'tests', 'test_channels']);
    expect(readdirSync(join(dir, 'models')).sort()).toEqual(['pump.json', 'pump.onnx']);
  });

  it('--family window-pca-t2q writes the previous default family (no baseline, the preset cooldown 0); an unknown family is exit 2', async () => {
    const dir = workdir();
    const input = join(dir, 'normal.csv');
    writeFileSync(input, simulateCsv({ seed: 8, rows: 600 }));
    const { io, out } = capture();
    expect(await runTrainCommand(['--input', input, '--out', join(dir, 'pump.onnx'), '--family', 'window-pca-t2q'], io)).toBe(0);
    expect(out.join('\n')).toMatch(/trained window-pca-t2q .* on 600 rows \(450 fit, 150 held out\)/);
    const manifest = manifestSchema.parse(JSON.parse(readFileSync(join(dir, 'pump.json'), 'utf8')));
    expect(manifest.family).toBe('window-pca-t2q');
    expect(manifest.baseline).toBeUndefined();
    expect(manifest.outputs.tests).toBeUndefined();
    expect(manifest.policy.cooldownMs).toBe(0);
    const session = await ort.InferenceSession.create(join(dir, 'pump.onnx'));
    expect(session.outputNames).toEqual(['score', 'contributions']);
    const bad = capture();
    expect(await runTrainCommand(['--input', input, '--out', join(dir, 'x.onnx'), '--family', 'pca'], bad.io)).toBe(2);
    expect(bad.err.join('\n')).toContain('--family pca must be one of baseline-tests, window-pca-t2q');
  });

  it.each([
    ['a missing file', null, /cannot read .*missing.csv: no such file/],
    ['an empty CSV', '', /is empty/],
    ['a non-numeric cell', 'ts,a,b\n1,2,3\n2,x,4\n', /line 3 \(data row 1\), column "a": "x" is not a number/],
    ['a NaN', 'ts,a,b\n1,2,3\n2,NaN,4\n', /column "a": NaN/],
    ['an Inf', 'ts,a,b\n1,2,3\n2,-Infinity,4\n', /column "a": -Infinity is not a finite reading/],
    ['too few rows', 'ts,a,b\n1,2,3\n2,3,5\n3,1,4\n', /has 3 rows; window 20 with 2 channels needs at least/],
    ['a constant channel', 'ts,a,b\n' + Array.from({ length: 200 }, (_, i) => `${i},${Math.sin(i)},7`).join('\n'), /channel "b" is constant/],
  ])('refuses %s with exit 1 and writes nothing', async (_what, csv, message) => {
    const dir = workdir();
    const input = join(dir, csv === null ? 'missing.csv' : 'in.csv');
    if (csv !== null) writeFileSync(input, csv);
    const { io, err } = capture();
    const code = await runTrainCommand(['--input', input, '--out', join(dir, 'out', 'm.onnx')], io);
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(message);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it.each([
    [['--out', 'x.onnx'], /--input and --out are required/],
    [['--input', 'a.csv', '--out', 'x.json'], /must end in .onnx/],
    [['--input', 'a.csv', '--out', 'x.onnx', '--window', 'ten'], /--window ten must be a whole number/],
    [['--input', 'a.csv', '--out', 'x.onnx', '--bogus'], /Unknown option '--bogus'/],
    [['--input', 'a.csv', '--out', 'x.onnx', '--cooldown', 'soon'], /--cooldown soon must be a number of seconds >= 0/],
  ])('refuses bad arguments %j with exit 2', async (argv, message) => {
    const { io, err } = capture();
    expect(await runTrainCommand(argv, io)).toBe(2);
    expect(err.join('\n')).toMatch(message);
  });

  it('replaces an existing model only when the new one is complete', async () => {
    const dir = workdir();
    const input = join(dir, 'normal.csv');
    writeFileSync(input, simulateCsv({ seed: 8, rows: 400 }));
    const out = join(dir, 'm.onnx');
    expect(await runTrainCommand(['--input', input, '--out', out], capture().io)).toBe(0);
    const before = readFileSync(out);
    writeFileSync(input, 'ts,a\n1,oops\n');
    expect(await runTrainCommand(['--input', input, '--out', out], capture().io)).toBe(1);
    expect(readFileSync(out).equals(before)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['m.json', 'm.onnx', 'normal.csv']);
  });
});
