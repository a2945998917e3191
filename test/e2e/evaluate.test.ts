import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileFigures, PooledFigures } from '../../src/offline/evaluate/replay.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { runCli } from '../support/cli.js';
import { DEFAULT_MODEL } from '../support/model.js';

describe('sentinel evaluate on a folder, end to end', () => {
  it('prints a row per file in natural order and the pooled total; --report and --decisions agree with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-e2e-eval-'));
    const input = join(dir, 'runs');
    mkdirSync(input);
    // Three small labelled recordings, one fault each; 10.csv sorts after 2.csv.
    const plans = [
      ['2.csv', { kind: 'spike' as const, channel: 2, start: 120, length: 15 }],
      ['10.csv', { kind: 'drift' as const, channel: 3, start: 150, length: 100 }],
      ['1.csv', { kind: 'noise' as const, channel: 0, start: 100, length: 40 }],
    ] as const;
    plans.forEach(([name, fault], i) => writeFileSync(join(input, name), simulateCsv({ seed: 40 + i, rows: 300, faults: [fault] })));
    const report = join(dir, 'report.html');
    const decisions = join(dir, 'decisions.csv');

    const text = await runCli(['evaluate', '--model', DEFAULT_MODEL, '--input', input, '--report', report, '--decisions', decisions]);
    expect(text.code, text.stderr).toBe(0);
    const json = await runCli(['evaluate', '--model', DEFAULT_MODEL, '--input', input, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const figures = JSON.parse(json.stdout) as { files: FileFigures[]; total: PooledFigures };

    const lines = text.stdout.split('\n');
    const header = lines.findIndex((l) => l.startsWith('file '));
    expect(lines[header]!.split(/\s{2,}/)).toEqual(['file', 'rows', 'TP', 'FP', 'FN', 'TN', 'precision', 'recall', 'F1', 'FAR %', 'MAR %', 'raised', 'resolved']);
    const rows = lines.slice(header + 1).filter((l) => l !== '' && !l.startsWith('-'));
    expect(rows.map((l) => l.split(/\s{2,}/)[0])).toEqual(['1.csv', '2.csv', '10.csv', 'total (3 files)']);
    const cells = (f: Omit<FileFigures, 'file'>): string[] => [
      String(f.rows),
      ...[f.tp, f.fp, f.fn, f.tn].map(String),
      ...[f.precision, f.recall, f.f1].map((v) => v.toFixed(3)),
      ...[f.far, f.mar].map((v) => v.toFixed(2)),
      String(f.raised),
      String(f.resolved),
    ];
    figures.files.forEach((f, i) => expect(rows[i]!.split(/\s+/).slice(1)).toEqual(cells(f)));
    expect(rows[3]!.split(/\s{2,}/).slice(1)).toEqual(cells(figures.total));
    expect(figures.total.rows).toBe(900);
    // Every file carries a fault the default model sees.
    for (const f of figures.files) expect(f.raised, f.file).toBeGreaterThanOrEqual(1);

    const html = readFileSync(report, 'utf8');
    expect(html).not.toMatch(/<script[\s>]|<script src|<link|https?:/i);
    expect(html.match(/<figure /g)).toHaveLength(3);
    expect(html.match(/<path class="score"/g)).toHaveLength(3);
    expect(html).toContain('<tr class="total"><td>total (3 files)</td>');

    const csv = readFileSync(decisions, 'utf8').trimEnd().split('\n');
    expect(csv[0]).toBe('file,row,timestamp,score,raised,anomaly');
    expect(csv).toHaveLength(1 + 900);
    expect(csv[1]).toMatch(/^1\.csv,0,/);
    expect(csv.filter((l) => l.startsWith('2.csv,') && l.endsWith(',1')).length).toBe(15);
  });
});
