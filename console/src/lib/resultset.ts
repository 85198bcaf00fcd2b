// The rows of a push query as they change: each `rows` event appends its rows, and a row
// whose op is "-" retracts one earlier equal row. Pure data; rendering is elsewhere.

export type Row = unknown[];

export interface LiveRows {
  /** Current rows, oldest first. */
  rows: Row[];
  /** A key per row (its JSON), parallel to `rows`, to find what a retraction removes. */
  keys: string[];
  /** Rows inserted so far. */
  inserted: number;
  /** Retractions applied. */
  retracted: number;
  /** Retractions whose row was not held (never seen, or already dropped for the limit). */
  unmatched: number;
  /** Oldest rows dropped to stay within the limit. */
  dropped: number;
}

export function emptyLive(): LiveRows {
  return { rows: [], keys: [], inserted: 0, retracted: 0, unmatched: 0, dropped: 0 };
}

/**
 * Applies one batch: rows with op "+" (or no ops at all) are appended; a row with op "-"
 * removes the most recent equal row. Keeps at most `limit` rows, dropping the oldest.
 * Returns a new object (the arrays are reused) so a UI sees the change.
 */
export function applyBatch(state: LiveRows, rows: Row[], ops?: string[] | null, limit = 5000): LiveRows {
  const next = { ...state };
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const key = JSON.stringify(row);
    if (ops?.[i] === '-') {
      const at = next.keys.lastIndexOf(key);
      if (at >= 0) {
        next.rows.splice(at, 1);
        next.keys.splice(at, 1);
        next.retracted++;
      } else {
        next.unmatched++;
      }
    } else {
      next.rows.push(row);
      next.keys.push(key);
      next.inserted++;
    }
  }
  const excess = next.rows.length - limit;
  if (excess > 0) {
    next.rows.splice(0, excess);
    next.keys.splice(0, excess);
    next.dropped += excess;
  }
  return next;
}
