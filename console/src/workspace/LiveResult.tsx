// A push query's rows as they arrive, retractions applied, until Stop.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from '../api/client';
import { pushQuery } from '../api/push';
import type { Column } from '../api/types';
import { ResultGrid } from '../components/ResultGrid';
import { Badge } from '../components/common';
import { applyBatch, emptyLive, type LiveRows } from '../lib/resultset';
import { formatInt } from '../lib/format';
import { formatTimestamp } from '../lib/time';

export type LiveStatus = 'starting' | 'live' | 'ended' | 'stopped' | 'failed';

export function LiveResult({
  sql,
  onError,
  onStatus,
}: {
  sql: string;
  /** The query failed; the workspace shows the error like any other. */
  onError: (e: ApiError) => void;
  onStatus?: (s: LiveStatus) => void;
}) {
  const [columns, setColumns] = useState<Column[]>([]);
  const [live, setLive] = useState<LiveRows>(emptyLive);
  const [watermark, setWatermark] = useState<string | null>(null);
  const [status, setStatusState] = useState<LiveStatus>('starting');
  const stop = useRef<() => void>(() => {});

  const setStatus = (s: LiveStatus) => {
    setStatusState(s);
    onStatus?.(s);
  };

  useEffect(() => {
    setStatus('starting');
    stop.current = pushQuery(sql, {
      onReady(e) {
        setColumns(e.columns ?? []);
        setStatus('live');
      },
      onRows(e) {
        if (e.columns) setColumns(e.columns);
        setLive((s) => applyBatch(s, e.rows ?? [], e.ops));
      },
      onWatermark(e) {
        setWatermark(e.watermark);
      },
      onError(e) {
        setStatus('failed');
        onError(e);
      },
      onEnd() {
        setStatus('ended');
      },
    });
    // Leaving the page, or a new run, closes the connection; the server then drops the query.
    return () => stop.current();
  }, [sql]);

  if (status === 'failed') return null;
  const running = status === 'live' || status === 'starting';
  return (
    <div class="live" data-status={status} data-rows={live.rows.length}>
      <div class="live-bar">
        <Badge tone={running ? 'good' : 'neutral'}>
          {status === 'starting' ? 'Starting…' : status === 'live' ? '● Live' : status === 'ended' ? 'Ended' : 'Stopped'}
        </Badge>
        <span>
          {formatInt(live.rows.length)} {live.rows.length === 1 ? 'row' : 'rows'}
          {live.retracted > 0 && ` · ${formatInt(live.retracted)} retracted`}
          {live.dropped > 0 && ` · oldest ${formatInt(live.dropped)} dropped`}
        </span>
        <span class="muted">watermark {watermark ? formatTimestamp(watermark) : '—'}</span>
        {running && (
          <button type="button" class="btn" onClick={() => { stop.current(); setStatus('stopped'); }}>
            Stop
          </button>
        )}
      </div>
      {status === 'live' && live.rows.length === 0 && (
        <p class="hint">
          Waiting for new rows: a push query starts at the current end of its inputs. Insert rows into the stream to see
          them here.
        </p>
      )}
      {columns.length > 0 && <ResultGrid columns={columns} rows={live.rows} newestFirst limit={500} caption="Live rows" />}
    </div>
  );
}
