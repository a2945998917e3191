import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TableError, channelColumn, parseTable, readTable } from '../../src/offline/data/table.js';

const parse = (text: string) => parseTable(Buffer.from(text, 'utf8'), 'test.csv');

describe('parseTable', () => {
  it('reads a ;-separated file with a datetime column and keeps labels out of the channels', () => {
    const t = parse('datetime;a;b;anomaly;changepoint\n2020-03-09 10:14:33;1.5;2;0.0;0.0\n2020-03-09 10:14:34;1.25;3;1.0;0.0\n');
    expect(t.channels).toEqual(['a', 'b']);
    expect(t.rows).toBe(2);
    expect(Array.from(t.timestamps!)).toEqual([Date.UTC(2020, 2, 9, 10, 14, 33), Date.UTC(2020, 2, 9, 10, 14, 34)]);
    expect(Array.from(channelColumn(t, 'a'))).toEqual([1.5, 1.25]);
    expect(Array.from(t.labels.anomaly!)).toEqual([0, 1]);
    expect(Array.from(t.labels.changepoint!)).toEqual([0, 0]);
    expect(t.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads a ,-separated file with epoch-ms timestamps and CRLF line ends', () => {
    const t = parse('ts,x,label\r\n1700000000000,1,0\r\n1700000001000,2,1\r\n');
    expect(t.channels).toEqual(['x']);
    expect(Array.from(t.timestamps!)).toEqual([1700000000000, 1700000001000]);
    expect(Array.from(t.labels.label!)).toEqual([0, 1]);
  });

  it('has no timestamps when there is no time column', () => {
    const t = parse('x,y\n1,2\n3,4\n');
    expect(t.timestamps).toBeNull();
    expect(t.columns.map((c) => Array.from(c))).toEqual([[1, 3], [2, 4]]);
  });

  it.each([
    ['', /empty/],
    ['a,b\n', /no data rows/],
    ['t,a\n1,2\n3,abc\n', /line 3 \(data row 1\), column "a": "abc" is not a number/],
    ['t,a\n1,NaN\n', /line 2 \(data row 0\), column "a": NaN/],
    ['t,a\n1,Infinity\n', /column "a": Infinity is not a finite reading/],
    ['t,a\n1,\n', /column "a": empty cell/],
    ['t,a,b\n1,2\n', /line 2 \(data row 0\): 2 cells, the header has 3/],
    ['timestamp,a\nyesterday,2\n', /column "timestamp": "yesterday" is neither an ISO-8601/],
    ['anomaly,timestamp\n0,1\n', /no sensor columns/],
  ])('refuses %j naming the problem', (text, message) => {
    expect(() => parse(text)).toThrow(TableError);
    expect(() => parse(text)).toThrow(message);
  });
});

describe('readTable', () => {
  it('reads a file and hashes its bytes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-table-'));
    const path = join(dir, 'x.csv');
    writeFileSync(path, 'a\n1\n');
    const t = readTable(path);
    expect(t.source).toBe(path);
    expect(t.sha256).toBe(createHash('sha256').update('a\n1\n').digest('hex'));
  });

  it('names a missing file', () => {
    expect(() => readTable('/nonexistent/normal.csv')).toThrow(/cannot read \/nonexistent\/normal.csv: no such file/);
  });
});
