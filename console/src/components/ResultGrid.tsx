// A result table: column names with their types, rows in monospace, NULLs muted,
// numbers right-aligned. Renders at most `limit` rows and says how many it left out.

import type { Column } from '../api/types';
import { columnKind } from '../lib/chart';
import { formatCell, formatInt } from '../lib/format';

export function ResultGrid({
  columns,
  rows,
  limit = 1000,
  newestFirst = false,
  caption,
}: {
  columns: Column[];
  rows: unknown[][];
  limit?: number;
  newestFirst?: boolean;
  caption?: string;
}) {
  const kinds = columns.map((c) => columnKind(c.type));
  const ordered = newestFirst ? rows.slice(-limit).reverse() : rows.slice(0, limit);
  return (
    <div class="grid-wrap">
      <table class="grid" aria-label={caption}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={kinds[columns.indexOf(c)] === 'number' ? 'num' : ''}>
                <span class="col-name">{c.name}</span>
                <span class="col-type">{c.type}</span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {ordered.map((row) => (
            <tr>
              {columns.map((c, i) => {
                const v = row[i];
                const text = formatCell(v, c.type);
                return (
                  <td
                    class={`${kinds[i] === 'number' ? 'num' : ''} ${v === null || v === undefined ? 'null' : ''}`}
                    title={text.length > 60 ? text : undefined}
                  >
                    {text}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <div class="grid-empty">No rows</div>}
      {rows.length > limit && (
        <div class="grid-more">
          Showing {newestFirst ? 'the newest ' : 'the first '}
          {formatInt(limit)} of {formatInt(rows.length)} rows.
        </div>
      )}
    </div>
  );
}
