// An example row for a stream's schema, to prefill the "produce records" form.

import type { Column } from '../api/types';

/** A plausible value for a column of the given SQL type. */
export function exampleValue(column: Column, now: Date): unknown {
  const t = column.type.toUpperCase();
  if (t.startsWith('TIMESTAMP')) return now.toISOString().slice(0, 19);
  if (t === 'DATE') return now.toISOString().slice(0, 10);
  if (/^(TINYINT|SMALLINT|INT|INTEGER|BIGINT)\b/.test(t)) return 1;
  if (/^(REAL|FLOAT|DOUBLE)/.test(t)) return 1.5;
  if (t.startsWith('DECIMAL') || t.startsWith('NUMERIC')) return '1.00';
  if (t === 'BOOLEAN') return true;
  if (/^(TEXT|VARCHAR|CHAR|STRING)/.test(t)) return column.name === 'page' ? '/home' : `${column.name} 1`;
  return null;
}

/** One NDJSON line with a value for every column. */
export function exampleNdjson(columns: Column[], now = new Date()): string {
  const row: Record<string, unknown> = {};
  for (const c of columns) row[c.name] = exampleValue(c, now);
  return JSON.stringify(row);
}
