// Numbers, sizes, rates and cell values as the console prints them.

import { formatTimestamp } from './time';

export function formatInt(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Rows per second, `—` when not known yet. */
export function formatRate(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—';
  if (r === 0) return '0/s';
  if (r < 10) return `${r.toFixed(1)}/s`;
  return `${formatInt(r)}/s`;
}

/** A result cell as text: NULL, timestamps with a space, objects as JSON. */
export function formatCell(value: unknown, type = ''): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return /^TIMESTAMP/i.test(type) ? formatTimestamp(value) : value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Rates from successive counters: remembers the last count per key and returns the rows
 * per second since then (undefined on the first sample).
 */
export class RateMeter {
  private last = new Map<string, { count: number; at: number }>();

  sample(key: string, count: number | undefined, at = Date.now()): number | undefined {
    if (count === undefined) return undefined;
    const prev = this.last.get(key);
    this.last.set(key, { count, at });
    if (!prev || at <= prev.at) return undefined;
    return Math.max(0, ((count - prev.count) * 1000) / (at - prev.at));
  }
}
