/**
 * The `--report` page of `evaluate` and `eval-skab`: one self-contained HTML file (inline CSS and SVG,
 * no script, no external reference) with the per-file table and, per file, the score over time, the
 * thresholds, the labelled spans and the alerts.
 */
import type { PooledFigures, TableEvaluation } from './replay.js';
import { tableCells } from './report-table.js';

export interface ReportPage {
  title: string;
  /** Lines under the title: model, input, protocol. */
  notes: readonly string[];
  /** The label column's name, for the legend. */
  label: string;
  files: readonly TableEvaluation[];
  total: PooledFigures | null;
}

/** Most points a figure's score line gets; longer files keep each bucket's minimum and maximum. */
export const MAX_POINTS = 2000;

/** A figure's size and margins in px; `strip` is the band above the plot where open alerts are drawn. */
export const FIGURE = { width: 960, height: 200, left: 64, right: 12, top: 14, bottom: 26, strip: 8 } as const;
const { width: WIDTH, height: HEIGHT, left: LEFT, right: RIGHT, top: TOP, bottom: BOTTOM, strip: STRIP } = FIGURE;
/** A score line this far above the raise threshold flattens everything else: draw it on a log axis. */
const LOG_RATIO = 20;

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe inside HTML and SVG elements and attribute values (file names and headers are not trusted). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c] as string);
}

/**
 * The score line thinned to at most `maxPoints` points: each bucket of rows keeps its minimum and its
 * maximum, in row order, so a one-row spike survives. NaN (window filling) breaks the line: it is kept
 * as a NaN point wherever a bucket holds no score at all.
 */
export function downsampleMinMax(values: ArrayLike<number>, maxPoints = MAX_POINTS): { rows: number[]; values: number[] } {
  const n = values.length;
  const rows: number[] = [];
  const out: number[] = [];
  if (n <= maxPoints) {
    for (let i = 0; i < n; i++) {
      rows.push(i);
      out.push(values[i] as number);
    }
    return { rows, values: out };
  }
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor((b * n) / buckets);
    const end = Math.floor(((b + 1) * n) / buckets);
    let lo = -1;
    let hi = -1;
    for (let i = start; i < end; i++) {
      const v = values[i] as number;
      if (Number.isNaN(v)) continue;
      if (lo < 0 || v < (values[lo] as number)) lo = i;
      if (hi < 0 || v > (values[hi] as number)) hi = i;
    }
    if (lo < 0) {
      rows.push(start);
      out.push(Number.NaN);
      continue;
    }
    for (const i of lo === hi ? [lo] : [Math.min(lo, hi), Math.max(lo, hi)]) {
      rows.push(i);
      out.push(values[i] as number);
    }
  }
  return { rows, values: out };
}

/** Runs of rows [start, end) where `flags` is 1. */
export function spans(flags: ArrayLike<number>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = 0; i <= flags.length; i++) {
    const on = i < flags.length && flags[i] === 1;
    if (on && start < 0) start = i;
    else if (!on && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}

interface YAxis {
  log: boolean;
  /** Pixel y of a score, clipped to the plot. */
  y: (score: number) => number;
  ticks: number[];
}

function yAxis(scores: Float32Array, thresholds: TableEvaluation['thresholds']): YAxis {
  let max = Number.NEGATIVE_INFINITY;
  let min = Number.POSITIVE_INFINITY;
  let minPositive = Number.POSITIVE_INFINITY;
  for (const s of scores) {
    if (Number.isNaN(s)) continue;
    if (s > max) max = s;
    if (s < min) min = s;
    if (s > 0 && s < minPositive) minPositive = s;
  }
  const raise = thresholds.raise;
  const top = Math.max(Number.isFinite(max) ? max : raise, raise, thresholds.clear);
  const bottomPx = HEIGHT - BOTTOM;
  const plotH = bottomPx - TOP - STRIP;
  const log = raise > 0 && top > LOG_RATIO * raise;
  if (log) {
    // The axis starts at the lowest score, but within two decades under the lower threshold (lower scores
    // carry no decision) and always a little under it (the thresholds stay in view).
    const low = Math.min(thresholds.clear, raise);
    const floor = Math.min(Math.max(Number.isFinite(minPositive) ? minPositive : 0, low / 100), low / 3);
    const lo = Math.log10(floor);
    const hi = Math.log10(top) + 0.05 * (Math.log10(top) - lo);
    const ticks: number[] = [];
    // At most about six labelled decades, however wide the range (a saturated score is 1e38).
    const step = Math.max(1, Math.ceil((Math.floor(hi) - Math.ceil(lo) + 1) / 6));
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e += step) ticks.push(10 ** e);
    const y = (s: number): number => bottomPx - ((Math.log10(Math.max(s, floor)) - lo) / (hi - lo)) * plotH;
    return { log, y, ticks };
  }
  const lo = Math.min(0, Number.isFinite(min) ? min : 0);
  const hi = top * 1.05 || 1;
  const y = (s: number): number => bottomPx - ((Math.min(Math.max(s, lo), hi) - lo) / (hi - lo)) * plotH;
  return { log, y, ticks: [lo, hi / 2, hi].filter((t, i, all) => all.indexOf(t) === i) };
}

const fixed = (v: number): string => String(Math.round(v * 10) / 10);

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-2 ? v.toExponential(0) : String(Number(v.toPrecision(3)));
}

/** One file's figure: an SVG with the score line, the thresholds, labelled spans and alerts. */
export function scoreFigure(e: TableEvaluation): string {
  const n = e.scores.length;
  const plotW = WIDTH - LEFT - RIGHT;
  const x = (row: number): number => LEFT + (n === 0 ? 0 : (row / n) * plotW);
  const axis = yAxis(e.scores, e.thresholds);
  const plotTop = TOP + STRIP;
  const bottom = HEIGHT - BOTTOM;
  const parts: string[] = [];
  const rect = (cls: string, x0: number, x1: number, y0: number, y1: number, title: string): string =>
    `<rect class="${cls}" x="${fixed(x0)}" y="${fixed(y0)}" width="${fixed(Math.max(x1 - x0, 0.5))}" height="${fixed(y1 - y0)}"><title>${title}</title></rect>`;

  if (e.from > 0) parts.push(rect('train', x(0), x(Math.min(e.from, n)), plotTop, bottom, `training rows 0–${e.from - 1} (not counted)`));
  for (const [a, b] of spans(e.labels)) parts.push(rect('label', x(a), x(b), plotTop, bottom, `labelled rows ${a}–${b - 1}`));
  for (const [a, b] of spans(e.raised)) parts.push(rect('alert', x(a), x(b), TOP, plotTop, `alert open rows ${a}–${b - 1}`));
  for (const t of axis.ticks) {
    const ty = fixed(axis.y(t));
    parts.push(`<line class="grid" x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${ty}" y2="${ty}"/><text class="tick" x="${LEFT - 4}" y="${ty}" dy="3" text-anchor="end">${tickLabel(t)}</text>`);
  }
  for (let k = 0; k <= 4; k++) {
    const row = Math.round((k * n) / 4);
    parts.push(`<text class="tick" x="${fixed(x(row))}" y="${bottom + 14}" text-anchor="middle">${row}</text>`);
  }

  const line = downsampleMinMax(e.scores);
  let d = '';
  let pen = false;
  for (let i = 0; i < line.rows.length; i++) {
    const v = line.values[i] as number;
    if (Number.isNaN(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${fixed(x(line.rows[i] as number))} ${fixed(axis.y(v))}`;
    pen = true;
  }
  parts.push(`<path class="score" d="${d}"/>`);
  const threshold = (cls: string, v: number): string => {
    const ty = fixed(axis.y(v));
    return `<line class="${cls}" x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${ty}" y2="${ty}"><title>${cls} threshold ${tickLabel(v)}</title></line>`;
  };
  parts.push(threshold('clear', e.thresholds.clear), threshold('raise', e.thresholds.raise));

  // A marker per alert: raised where an open span starts, resolved where it ends (if it ends in the file).
  const marker = (cls: 'raised' | 'resolved', row: number): string => {
    const mx = x(row);
    const [base, tip] = cls === 'raised' ? [plotTop, TOP - 2] : [TOP - 2, plotTop];
    const points = [[mx - 4, base], [mx + 4, base], [mx, tip]] as const;
    return `<polygon class="${cls}" points="${points.map((p) => p.map(fixed).join(',')).join(' ')}"><title>${cls} at row ${row}</title></polygon>`;
  };
  for (const [a, b] of spans(e.raised)) {
    parts.push(marker('raised', a));
    if (b < n) parts.push(marker('resolved', b));
  }
  parts.push(`<text class="axis" x="4" y="${TOP}">score${axis.log ? ' (log)' : ''}</text>`);
  parts.push(`<rect class="frame" x="${LEFT}" y="${plotTop}" width="${plotW}" height="${bottom - plotTop}"/>`);
  return `<svg class="figure" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img">${parts.join('')}</svg>`;
}

function figuresLine(e: TableEvaluation): string {
  const f = e.figures;
  const { raise, clear } = e.thresholds;
  const thresholds = raise === clear ? `raise = clear ${tickLabel(raise)}` : `raise ${tickLabel(raise)}, clear ${tickLabel(clear)}`;
  return `${f.rows} rows counted · F1 ${f.f1.toFixed(3)} · FAR ${f.far.toFixed(2)} % · MAR ${f.mar.toFixed(2)} % · ${f.raised} raised, ${f.resolved} resolved · ${thresholds}`;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}th,td{padding:2px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
tr.total td{border-top:1px solid #888;font-weight:600}thead th{border-bottom:1px solid #888}
figure{margin:18px 0}figcaption{font-weight:600}figcaption span{font-weight:400;color:#555}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
.score{fill:none;stroke:#1f5fa8;stroke-width:1}.raise{stroke:#c62828;stroke-dasharray:6 3}.clear{stroke:#2e7d32;stroke-dasharray:2 3}
.label{fill:#f5a623;fill-opacity:.25}.alert{fill:#c62828;fill-opacity:.7}.train{fill:#999;fill-opacity:.15}
polygon.raised{fill:#c62828}polygon.resolved{fill:#2e7d32}.grid{stroke:#eee}.frame{fill:none;stroke:#bbb}
.tick,.axis{font-size:10px;fill:#555}`;

/** The whole page. Every string that came from a file name, a header or a model is escaped. */
export function reportHtml(page: ReportPage): string {
  const { head, rows } = tableCells(
    page.files.map((f) => f.figures),
    page.total,
  );
  const body = rows.map((cells, r) => {
    const total = r >= page.files.length;
    const first = total ? escapeHtml(cells[0] as string) : `<a href="#f${r}">${escapeHtml(cells[0] as string)}</a>`;
    return `<tr${total ? ' class="total"' : ''}><td>${first}</td>${cells.slice(1).map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  });
  const label = escapeHtml(page.label);
  const legend = [
    ['score', '#1f5fa8', 'score of the window ending at each row'],
    ['raise', '#c62828', 'raise threshold (dashed)'],
    ['clear', '#2e7d32', 'clear threshold (dotted)'],
    ['label', 'rgba(245,166,35,.4)', `${label} = 1`],
    ['alert', '#c62828', 'alert open (strip above the plot; ▲ raised, ▼ resolved)'],
    ['train', 'rgba(153,153,153,.3)', 'rows not counted (training)'],
  ]
    .map(([, color, text]) => `<span><i class="sw" style="background:${color}"></i>${text}</span>`)
    .join('');
  const figures = page.files.map(
    (e, i) =>
      `<figure id="f${i}"><figcaption>${escapeHtml(e.figures.file)} <span>${escapeHtml(figuresLine(e))}</span></figcaption>${scoreFigure(e)}</figure>`,
  );
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(page.title)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(page.title)}</h1>`,
    ...page.notes.map((n) => `<p>${escapeHtml(n)}</p>`),
    `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`,
    `<p class="legend">${legend}</p>`,
    ...figures,
    '</body></html>',
    '',
  ].join('\n');
}
