// One continuous query: its SQL, its plan as a graph with per-operator figures, its
// watermark, state and lateness, why it has not produced output yet, a view's current
// rows, and Stop/Drop.

import { useRef } from 'preact/hooks';
import { api } from '../api/client';
import { Badge, ConfirmButton, ErrorBox, Loading, PageHeader, Stat, statusTone } from '../components/common';
import { PlanGraph } from '../components/PlanGraph';
import { ResultGrid } from '../components/ResultGrid';
import { usePoll, useTitle } from '../hooks';
import { formatBytes, formatInt, formatRate, RateMeter } from '../lib/format';
import { href } from '../lib/route';
import { formatTimestamp } from '../lib/time';
import { openInWorkspace } from '../workspace/draft';
import { kindText } from './QueryList';
import { WhyNoOutput } from './WhyNoOutput';

export function QueryPage({ id }: { id: string }) {
  useTitle(id);
  const meter = useRef(new RateMeter());
  const rate = useRef<number | undefined>(undefined);
  const { data: q, error } = usePoll(
    async () => {
      const query = await api.query(id);
      rate.current = query.rows_per_second ?? meter.current.sample('in', query.rows_in);
      return query;
    },
    2000,
    [id],
  );
  const isView = q?.kind === 'materialized_view';
  const source = usePoll(() => (q?.source ? api.stream(q.source) : Promise.resolve(undefined)), 10000, [q?.source]);
  const view = usePoll(() => (isView ? api.view(q?.name ?? id) : Promise.resolve(undefined)), 2000, [isView, id]);
  const name = q?.name ?? id;

  const stop = async () => {
    await api.stopQuery(id);
    location.hash = href.queries();
  };

  return (
    <div class="page">
      <PageHeader
        kicker={<a href={href.queries()}>Queries</a>}
        title={
          <>
            {name} {q && <Badge tone={statusTone(q.status)}>{q.status ?? 'unknown'}</Badge>}
          </>
        }
      >
        {q && (
          <ConfirmButton
            label={isView ? 'Drop view' : 'Stop query'}
            confirm={isView ? 'Drop it? Click again' : 'Stop it? Click again'}
            onConfirm={stop}
          />
        )}
      </PageHeader>
      <ErrorBox error={error} />
      {!q && !error && <Loading />}
      {q && (
        <>
          <p class="lede">
            A {kindText(q.kind)} reading{' '}
            {inputsOf(q).length === 0
              ? 'its input'
              : inputsOf(q).map((s, i) => (
                  <>
                    {i > 0 && (i === inputsOf(q).length - 1 ? ' and ' : ', ')}
                    <a href={href.stream(s)}>{s}</a>
                  </>
                ))}
            {q.kind === 'stream' && (
              <>
                , writing the stream <a href={href.stream(name)}>{name}</a>
              </>
            )}
            {q.emit && <> · emits {q.emit === 'final' ? 'one row per window when it closes' : 'changes as they happen'}</>}
            {q.parallelism !== undefined && <> · parallelism {q.parallelism}</>}
            {q.created_at_ms !== undefined && <> · started {new Date(q.created_at_ms).toLocaleString()}</>}
          </p>
          <pre class="sql-block">{q.sql}</pre>

          <div class="stats">
            <Stat label="Watermark" value={q.watermark ? formatTimestamp(q.watermark) : '—'} />
            <Stat label="Rows in" value={formatInt(q.rows_in)} />
            <Stat label="Rows out" value={formatInt(q.rows_out)} />
            <Stat label="Rate in" value={formatRate(rate.current)} />
            <Stat label="Lag" value={formatInt(q.lag)} title="Rows committed in the input that the query has not processed" />
            <Stat label="Late rows" value={formatInt(q.late_rows)} title="Rows dropped because their window had closed" />
            <Stat
              label="State"
              value={
                <>
                  {formatInt(q.state_rows)} {q.state_rows === 1 ? 'row' : 'rows'}{q.state_bytes !== undefined && <span class="muted"> · {formatBytes(q.state_bytes)}</span>}
                </>
              }
            />
          </div>

          <div class="two-col wide-right">
            <section class="card">
              <h2>Plan</h2>
              {q.plan?.nodes?.length ? (
                <PlanGraph nodes={q.plan.nodes} edges={q.plan.edges ?? []} />
              ) : (
                <p class="hint">The server did not report a plan for this query.</p>
              )}
            </section>
            <div>
              <WhyNoOutput
                query={q}
                source={{ delayMs: source.data?.watermark?.delay_ms, idleTimeoutMs: source.data?.idle_timeout_ms }}
              />
              {isView && (
                <section class="card">
                  <h2>
                    Current rows{' '}
                    <span class="muted small">{view.data ? `${formatInt(view.data.row_count ?? view.data.rows?.length)} rows` : ''}</span>
                  </h2>
                  <ErrorBox error={view.error} />
                  {view.data && <ResultGrid columns={view.data.columns ?? []} rows={view.data.rows ?? []} limit={200} caption="View rows" />}
                  <div class="form-row">
                    <button type="button" class="btn" onClick={() => openInWorkspace(`SELECT * FROM ${name};`)}>
                      Query in SQL
                    </button>
                  </div>
                </section>
              )}
            </div>
          </div>
        </>
      )}
    </div>
  );
}

/** The streams a query reads: all of them when the server lists them, else its source. */
function inputsOf(q: { inputs?: string[]; source?: string }): string[] {
  if (q.inputs && q.inputs.length > 0) return q.inputs;
  return q.source ? [q.source] : [];
}
