// Live data for a dashboard panel: a push query (SQL ending in EMIT …) streams over SSE
// with retractions applied; any other SQL is re-run every few seconds, which suits views.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api/client';
import { pushQuery } from '../api/push';
import type { Column, SqlResult } from '../api/types';
import { applyBatch, emptyLive, type LiveRows } from '../lib/resultset';
import { isPushQuery } from '../lib/sqltext';

export const REFRESH_MS = 2000;

export interface PanelData {
  columns: Column[];
  rows: unknown[][];
  error: ApiError | null;
  /** Epoch ms of the last change. */
  updatedAt: number | null;
  mode: 'push' | 'poll';
}

/** The last result with rows of a (possibly multi-statement) response. */
function lastRows(r: SqlResult): SqlResult | undefined {
  if (r.kind === 'multi') return [...(r.results ?? [])].reverse().find((x) => x.kind === 'rows');
  return r.kind === 'rows' ? r : undefined;
}

export function usePanelData(sql: string): PanelData {
  const push = isPushQuery(sql.trim().replace(/;\s*$/, ''));
  const [columns, setColumns] = useState<Column[]>([]);
  const [live, setLive] = useState<LiveRows>(emptyLive);
  const [rows, setRows] = useState<unknown[][]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [updatedAt, setUpdatedAt] = useState<number | null>(null);

  useEffect(() => {
    setColumns([]);
    setRows([]);
    setLive(emptyLive());
    setError(null);
    const text = sql.trim().replace(/;\s*$/, '');
    if (push) {
      return pushQuery(text, {
        onReady: (e) => setColumns(e.columns ?? []),
        onRows: (e) => {
          if (e.columns) setColumns(e.columns);
          setLive((s) => applyBatch(s, e.rows ?? [], e.ops, 10000));
          setUpdatedAt(Date.now());
        },
        onError: setError,
      });
    }
    let alive = true;
    let timer: ReturnType<typeof setTimeout>;
    const poll = async () => {
      if (!document.hidden) {
        try {
          const r = lastRows(await api.sql(text));
          if (!alive) return;
          setColumns(r?.columns ?? []);
          setRows(r?.rows ?? []);
          setError(null);
          setUpdatedAt(Date.now());
        } catch (e) {
          if (!alive) return;
          setError(e instanceof ApiError ? e : new ApiError(0, { code: 'error', message: String(e) }));
        }
      }
      if (alive) timer = setTimeout(poll, REFRESH_MS);
    };
    void poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [sql, push]);

  return { columns, rows: push ? live.rows : rows, error, updatedAt, mode: push ? 'push' : 'poll' };
}
