// The outcome of a run, one card per statement: rows in a grid, a message for DDL and
// DML, the error with its position, or a live push query.

import type { ApiError } from '../api/client';
import type { SqlResult } from '../api/types';
import { ResultGrid } from '../components/ResultGrid';
import { formatInt } from '../lib/format';
import { oneLine, stripLocationPrefix, type Statement } from '../lib/sqltext';
import { LiveResult, type LiveStatus } from './LiveResult';

export type Entry =
  | { kind: 'result'; stmt?: Statement; index: number; result: SqlResult }
  | { kind: 'ran'; stmt: Statement; index: number }
  | { kind: 'error'; stmt?: Statement; index?: number; error: ApiError; where?: { line: number; column: number } }
  | { kind: 'live'; stmt: Statement; index: number; key: number }
  | { kind: 'problem'; message: string }
  | { kind: 'note'; message: string };

function StatementHead({ stmt, index, meta }: { stmt?: Statement; index?: number; meta?: string }) {
  return (
    <div class="result-head">
      {index !== undefined && <span class="stmt-no">{index + 1}</span>}
      <code class="stmt-sql" title={stmt?.sql}>{stmt ? oneLine(stmt.sql) : ''}</code>
      {meta && <span class="result-meta">{meta}</span>}
    </div>
  );
}

function elapsed(ms: number | undefined): string {
  if (!ms) return '';
  return ms < 1 ? ` · ${ms.toFixed(2)} ms` : ms < 1000 ? ` · ${ms.toFixed(1)} ms` : ` · ${(ms / 1000).toFixed(2)} s`;
}

function ResultCard({ entry }: { entry: Extract<Entry, { kind: 'result' }> }) {
  const r = entry.result;
  if (r.kind === 'rows') {
    const n = r.row_count ?? r.rows?.length ?? 0;
    return (
      <section class="result" data-kind="rows" data-rows={n}>
        <StatementHead stmt={entry.stmt} index={entry.index} meta={`${formatInt(n)} ${n === 1 ? 'row' : 'rows'}${elapsed(r.elapsed_ms)}`} />
        <ResultGrid columns={r.columns ?? []} rows={r.rows ?? []} caption={`Result of statement ${entry.index + 1}`} />
      </section>
    );
  }
  return (
    <section class="result" data-kind="ok">
      <StatementHead stmt={entry.stmt} index={entry.index} meta={r.rows_affected !== undefined ? `${formatInt(r.rows_affected)} rows affected` : 'OK'} />
      <div class="result-message">✓ {r.message ?? 'OK'}</div>
    </section>
  );
}

export function Results({
  entries,
  onShowError,
  onLiveError,
  onLiveStatus,
}: {
  entries: Entry[];
  onShowError: (entry: Extract<Entry, { kind: 'error' }>) => void;
  onLiveError: (e: ApiError, entry: Extract<Entry, { kind: 'live' }>) => void;
  onLiveStatus: (s: LiveStatus) => void;
}) {
  return (
    <div class="results" aria-live="polite">
      {entries.map((e) => {
        switch (e.kind) {
          case 'result':
            return <ResultCard entry={e} />;
          case 'ran':
            return (
              <section class="result" data-kind="ran">
                <StatementHead stmt={e.stmt} index={e.index} meta="ran" />
              </section>
            );
          case 'problem':
            return (
              <section class="result error" data-kind="error" role="alert">
                <div class="result-message">{e.message}</div>
              </section>
            );
          case 'note':
            return (
              <section class="result" data-kind="note">
                <div class="result-note">{e.message}</div>
              </section>
            );
          case 'error':
            return (
              <section class="result error" data-kind="error" role="alert">
                <StatementHead stmt={e.stmt} index={e.index} meta={e.error.code} />
                <div class="error-line">
                  {e.where && (
                    <button type="button" class="link" onClick={() => onShowError(e)} title="Show in the editor">
                      Line {e.where.line}, column {e.where.column}
                    </button>
                  )}
                  <pre class="error-text">{stripLocationPrefix(e.error.message)}</pre>
                </div>
              </section>
            );
          case 'live':
            return (
              <section class="result" data-kind="live">
                <StatementHead stmt={e.stmt} index={e.index} meta="push query" />
                <LiveResult key={e.key} sql={e.stmt.sql} onError={(err) => onLiveError(err, e)} onStatus={onLiveStatus} />
              </section>
            );
        }
      })}
    </div>
  );
}
