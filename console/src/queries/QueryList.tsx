// Continuous queries (derived streams and materialized views) with status and rates,
// and the materialized views with their row counts.

import { useRef } from 'preact/hooks';
import { api } from '../api/client';
import type { Query, View } from '../api/types';
import { Badge, Empty, ErrorBox, Loading, PageHeader, statusTone } from '../components/common';
import { usePoll, useTitle } from '../hooks';
import { formatInt, formatRate, RateMeter } from '../lib/format';
import { href } from '../lib/route';
import { formatTimestamp } from '../lib/time';

export function kindText(kind: Query['kind']): string {
  return kind === 'materialized_view' ? 'materialized view' : kind === 'stream' ? 'derived stream' : (kind ?? 'query');
}

export function QueryList() {
  useTitle('Queries');
  const meter = useRef(new RateMeter());
  const rates = useRef(new Map<string, number | undefined>());
  const { data, error } = usePoll(async () => {
    const [queries, views] = await Promise.all([api.queries(), api.views()]);
    const now = Date.now();
    for (const q of queries) {
      const id = q.id ?? q.name ?? '';
      const measured = meter.current.sample(id, q.rows_in, now);
      rates.current.set(id, q.rows_per_second ?? measured);
    }
    return { queries, views };
  }, 2000);

  return (
    <div class="page">
      <PageHeader title="Queries and views" />
      <ErrorBox error={error} />
      {!data && !error && <Loading />}
      {data && (
        <>
          <section class="card">
            <h2>Continuous queries</h2>
            {data.queries.length === 0 ? (
              <Empty>
                No continuous queries. <code>CREATE MATERIALIZED VIEW v AS SELECT …</code> or{' '}
                <code>CREATE STREAM s AS SELECT …</code> in the <a href={href.workspace()}>SQL workspace</a> starts one.
              </Empty>
            ) : (
              <QueryTable queries={data.queries} rates={rates.current} />
            )}
          </section>
          <section class="card">
            <h2>Materialized views</h2>
            {data.views.length === 0 ? <Empty>No materialized views.</Empty> : <ViewTable views={data.views} />}
          </section>
        </>
      )}
    </div>
  );
}

function QueryTable({ queries, rates }: { queries: Query[]; rates: Map<string, number | undefined> }) {
  return (
    <div class="table-wrap">
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Kind</th>
            <th scope="col">Source</th>
            <th scope="col">Status</th>
            <th scope="col" class="num">Rows in</th>
            <th scope="col" class="num">Rows out</th>
            <th scope="col" class="num">Rate in</th>
            <th scope="col">Watermark</th>
            <th scope="col" class="num">Lag</th>
            <th scope="col" class="num">Late</th>
          </tr>
        </thead>
        <tbody>
          {queries.map((q) => {
            const id = q.id ?? q.name ?? '';
            return (
              <tr>
                <td>
                  <a class="strong" href={href.query(id)}>{q.name ?? id}</a>
                </td>
                <td class="small">{kindText(q.kind)}</td>
                <td>{q.source ? <a href={href.stream(q.source)}>{q.source}</a> : '—'}</td>
                <td>
                  <Badge tone={statusTone(q.status)}>{q.status ?? 'unknown'}</Badge>
                </td>
                <td class="num">{formatInt(q.rows_in)}</td>
                <td class="num">{formatInt(q.rows_out)}</td>
                <td class="num">{formatRate(rates.get(id))}</td>
                <td class="mono small">{q.watermark ? formatTimestamp(q.watermark) : <span class="muted">—</span>}</td>
                <td class="num">{formatInt(q.lag)}</td>
                <td class={`num ${(q.late_rows ?? 0) > 0 ? 'warn-text' : ''}`}>{formatInt(q.late_rows)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function ViewTable({ views }: { views: View[] }) {
  return (
    <div class="table-wrap">
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col" class="num">Rows</th>
            <th scope="col">Columns</th>
          </tr>
        </thead>
        <tbody>
          {views.map((v) => (
            <tr>
              <td>
                <a class="strong" href={href.query(v.name ?? '')}>{v.name}</a>
              </td>
              <td class="num">{formatInt(v.row_count)}</td>
              <td class="mono small">{(v.columns ?? []).map((c) => c.name).join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
