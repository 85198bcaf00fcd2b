// Which columns of a result a chart draws, and the arrays uPlot wants. The x axis is the
// first timestamp column, the series are the numeric columns; when a text column sits
// beside exactly one number (`window_start, page, count(*)`), each of its values becomes
// a series. Panel options may name the columns instead.

import { parseTimestamp } from './time';
import type { Row } from './resultset';

export interface ColumnInfo {
  name: string;
  type: string;
}

export type ColumnKind = 'time' | 'number' | 'text' | 'other';

/** How a column's SQL type (as Weir names it) is charted. */
export function columnKind(type: string): ColumnKind {
  const t = type.trim().toUpperCase();
  if (/^(TIMESTAMP|DATE|TIME\b)/.test(t)) return 'time';
  if (/\[\]$/.test(t)) return 'other';
  if (/^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|REAL|FLOAT|DOUBLE|DECIMAL|NUMERIC|U?INT\d+|FLOAT\d+)(?![A-Z])/.test(t)) {
    return 'number';
  }
  if (/^(TEXT|VARCHAR|CHAR|STRING|UTF8|LARGEUTF8|BOOLEAN)/.test(t)) return 'text';
  return 'other';
}

export interface ChartOptions {
  /** Column for the x axis. */
  x?: string;
  /** Columns to draw as series (a name or a list). */
  y?: string | string[];
  /** Column whose values split one numeric column into several series; "" for none. */
  group?: string;
}

export interface SeriesChoice {
  /** Index of the x column, or null when no column is a timestamp. */
  x: number | null;
  /** Indexes of the numeric columns drawn. */
  ys: number[];
  /** Index of the column that splits the series, or null. */
  group: number | null;
}

function indexOf(columns: ColumnInfo[], name: string | undefined): number {
  if (!name) return -1;
  const lower = name.toLowerCase();
  return columns.findIndex((c) => c.name.toLowerCase() === lower);
}

/** Picks the x column, the series and the grouping column for a result. */
export function chooseSeries(columns: ColumnInfo[], options: ChartOptions = {}): SeriesChoice {
  const kinds = columns.map((c) => columnKind(c.type));
  let x = indexOf(columns, options.x);
  if (x < 0) x = kinds.indexOf('time');
  const wanted = (Array.isArray(options.y) ? options.y : options.y ? [options.y] : [])
    .map((name) => indexOf(columns, name))
    .filter((i) => i >= 0 && i !== x);
  const ys = wanted.length
    ? wanted
    : kinds.flatMap((k, i) => (k === 'number' && i !== x ? [i] : []));
  let group: number | null = null;
  if (options.group !== '') {
    const named = indexOf(columns, options.group);
    if (named >= 0) group = named;
    else if (ys.length === 1 && x >= 0) {
      const text = kinds.indexOf('text');
      if (text >= 0) group = text;
    }
  }
  return { x: x >= 0 ? x : null, ys, group };
}

/** A value as a number for charting: numbers, numeric strings (DECIMAL) and booleans; else null. */
export function toNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

export interface ChartData {
  /** X values in seconds since the epoch (time axis) or row numbers, ascending. */
  xs: number[];
  /** Whether `xs` are times. */
  time: boolean;
  series: { label: string; values: (number | null)[] }[];
}

/**
 * Lays out rows for uPlot: one x per distinct x value, ascending; each series has a value
 * per x (null where it has none). Rows sharing an x and a series are summed.
 */
export function buildChartData(columns: ColumnInfo[], rows: Row[], choice: SeriesChoice): ChartData {
  const time = choice.x !== null;
  const xOf = (row: Row, i: number): number | null => {
    if (choice.x === null) return i;
    const ms = parseTimestamp(row[choice.x]);
    return ms === null ? null : ms / 1000;
  };
  const cells = new Map<string, Map<number, number>>();
  const labels: string[] = [];
  const cell = (label: string) => {
    let m = cells.get(label);
    if (!m) {
      m = new Map();
      cells.set(label, m);
      labels.push(label);
    }
    return m;
  };
  if (choice.group === null) for (const y of choice.ys) cell(columns[y].name);
  const xset = new Set<number>();
  rows.forEach((row, i) => {
    const x = xOf(row, i);
    if (x === null) return;
    xset.add(x);
    for (const y of choice.ys) {
      const v = toNumber(row[y]);
      if (v === null) continue;
      const label =
        choice.group === null
          ? columns[y].name
          : choice.ys.length === 1
            ? String(row[choice.group] ?? 'null')
            : `${columns[y].name} ${String(row[choice.group] ?? 'null')}`;
      const m = cell(label);
      m.set(x, (m.get(x) ?? 0) + v);
    }
  });
  const xs = [...xset].sort((a, b) => a - b);
  const series = labels.map((label) => {
    const m = cells.get(label)!;
    return { label, values: xs.map((x) => m.get(x) ?? null) };
  });
  return { xs, time, series };
}

/**
 * The single number a "number" panel shows: the named (or first numeric) column of the
 * latest row — by the time column when there is one, else the last row.
 */
export function pickNumber(
  columns: ColumnInfo[],
  rows: Row[],
  options: ChartOptions = {},
): { value: unknown; label: string } | null {
  if (rows.length === 0) return null;
  const choice = chooseSeries(columns, { ...options, group: '' });
  const y = choice.ys[0];
  if (y === undefined) return null;
  let row = rows[rows.length - 1];
  if (choice.x !== null) {
    let best = -Infinity;
    for (const r of rows) {
      const t = parseTimestamp(r[choice.x!]) ?? -Infinity;
      if (t >= best) {
        best = t;
        row = r;
      }
    }
  }
  return { value: row[y], label: columns[y].name };
}

/**
 * The y range of a chart: from 0 when every value is positive (counts and sums, the usual
 * case), with a little headroom above the largest value.
 */
export function yRange(min: number | null, max: number | null): [number, number] {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const lo = min >= 0 ? 0 : min;
  const hi = Math.max(max, 0);
  const span = hi - lo || Math.abs(hi) || 1;
  return [min >= 0 ? 0 : lo - span * 0.08, hi + span * 0.08];
}

/** The smallest gap between successive x values (the width of one bar), 1 when unknown. */
export function xStep(xs: ArrayLike<number>): number {
  let step = Infinity;
  for (let i = 1; i < xs.length; i++) {
    const d = xs[i] - xs[i - 1];
    if (d > 0 && d < step) step = d;
  }
  return Number.isFinite(step) ? step : 1;
}
