// One stream: its schema and settings, its partitions (offsets, bytes, watermark), its
// Kafka source (state and lag per Kafka partition) and the sinks that write it out, a
// live tail of its records, and a form to produce test records.

import { useRef } from 'preact/hooks';
import { api } from '../api/client';
import type { KafkaSource, Sink } from '../api/types';
import { ErrorBox, Loading, PageHeader, Stat } from '../components/common';
import { usePoll, useTitle } from '../hooks';
import { formatBytes, formatInt, formatRate, RateMeter } from '../lib/format';
import { href } from '../lib/route';
import { formatDuration, formatTimestamp } from '../lib/time';
import { openInWorkspace } from '../workspace/draft';
import { Produce } from './Produce';
import { retentionText } from './StreamList';
import { Tail } from './Tail';

export function StreamPage({ name }: { name: string }) {
  useTitle(name);
  const meter = useRef(new RateMeter());
  const rate = useRef<number | undefined>(undefined);
  const { data: s, error, refresh } = usePoll(
    async () => {
      const [stream, sinks] = await Promise.all([api.stream(name), api.sinks()]);
      rate.current = meter.current.sample('rows', stream.rows_ingested ?? stream.rows);
      return { ...stream, sinks: sinks.filter((k) => k.from === name) };
    },
    2000,
    [name],
  );

  return (
    <div class="page">
      <PageHeader kicker={<a href={href.streams()}>Streams</a>} title={name}>
        <button type="button" class="btn" onClick={() => openInWorkspace(`SELECT * FROM ${name} LIMIT 100;`)}>
          Query in SQL
        </button>
        <button type="button" class="btn" onClick={() => openInWorkspace(`SELECT * FROM ${name} EMIT CHANGES;`)}>
          Watch live
        </button>
      </PageHeader>
      <ErrorBox error={error} />
      {!s && !error && <Loading />}
      {s && (
        <>
          <div class="stats">
            <Stat label="Rows" value={formatInt(s.rows)} />
            <Stat label="Size" value={formatBytes(s.bytes)} />
            <Stat label="Rate" value={formatRate(rate.current)} title="Rows ingested per second, measured between refreshes" />
            <Stat label="Partitions" value={s.partition_count ?? s.partitions.length} />
            <Stat label="Retention" value={retentionText(s)} />
          </div>

          <div class="two-col">
            <section class="card">
              <h2>Schema</h2>
              <table class="table compact">
                <thead>
                  <tr>
                    <th scope="col">Column</th>
                    <th scope="col">Type</th>
                    <th scope="col">Nullable</th>
                  </tr>
                </thead>
                <tbody>
                  {s.columns.map((c) => (
                    <tr>
                      <td class="mono">{c.name}</td>
                      <td class="mono muted">{c.type}</td>
                      <td>{c.nullable === false ? 'no' : 'yes'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <dl class="facts">
                <dt>Event time</dt>
                <dd class="mono">{s.watermark ? `WATERMARK FOR ${s.watermark.column} AS ${s.watermark.expression}` : 'none (no windows over this stream)'}</dd>
                <dt>Key</dt>
                <dd class="mono">{s.key?.length ? s.key.join(', ') : 'none: round-robin per batch'}</dd>
                <dt>Idle after</dt>
                <dd>{s.idle_timeout_ms !== undefined ? formatDuration(s.idle_timeout_ms) : '—'}</dd>
                {s.created_at_ms && (
                  <>
                    <dt>Created</dt>
                    <dd>{new Date(s.created_at_ms).toLocaleString()}</dd>
                  </>
                )}
              </dl>
            </section>

            <section class="card">
              <h2>Partitions</h2>
              <div class="table-wrap">
                <table class="table compact">
                  <thead>
                    <tr>
                      <th scope="col" class="num">#</th>
                      <th scope="col" class="num">Earliest</th>
                      <th scope="col" class="num">Committed</th>
                      <th scope="col" class="num">Latest</th>
                      <th scope="col" class="num">Size</th>
                      <th scope="col">Watermark</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.partitions.map((p) => (
                      <tr>
                        <td class="num">{p.partition}</td>
                        <td class="num">{formatInt(p.earliest_offset)}</td>
                        <td class="num">{formatInt(p.committed_offset)}</td>
                        <td class="num">{formatInt(p.latest_offset)}</td>
                        <td class="num">{formatBytes(p.bytes)}</td>
                        <td class="mono small">{p.watermark ? formatTimestamp(p.watermark) : <span class="muted">—</span>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <p class="hint">
                Offsets are dense per partition. Readers see up to the committed offset: rows that are durable.
              </p>
            </section>
          </div>

          {s.source && <SourceCard source={s.source} />}
          {s.sinks.length > 0 && <SinksCard sinks={s.sinks} />}

          <section class="card">
            <h2>Produce test records</h2>
            <Produce stream={s} onProduced={refresh} />
          </section>

          <section class="card">
            <h2>Live tail</h2>
            <Tail stream={s} />
          </section>
        </>
      )}
    </div>
  );
}

const SOURCE_BADGE: Record<string, string> = { running: 'good', starting: 'accent', retrying: 'warn', stopped: 'bad' };

/** A Kafka source: its state, and per Kafka partition how far Weir read and the lag. */
function SourceCard({ source }: { source: KafkaSource }) {
  return (
    <section class="card" data-testid="kafka-source">
      <h2>
        Kafka source: topic <span class="mono">{source.topic}</span> <span class={`badge ${SOURCE_BADGE[source.state] ?? ''}`}>{source.state}</span>
      </h2>
      {source.error && <p class="error-box">{source.error}</p>}
      <p class="hint">
        {formatInt(source.records ?? 0)} records read and {formatInt(source.dead_letters ?? 0)} set aside as dead letters since the
        server started, from {source.bootstrap_servers}.
      </p>
      <table class="table compact">
        <thead>
          <tr>
            <th scope="col" class="num">Kafka partition</th>
            <th scope="col" class="num">Stream partition</th>
            <th scope="col" class="num">Next offset</th>
            <th scope="col" class="num">Kafka end offset</th>
            <th scope="col" class="num">Lag</th>
          </tr>
        </thead>
        <tbody>
          {source.partitions.map((p) => (
            <tr>
              <td class="num">{p.kafka_partition}</td>
              <td class="num">{p.weir_partition}</td>
              <td class="num">{formatInt(p.next_offset)}</td>
              <td class="num">{p.end_offset == null ? '—' : formatInt(p.end_offset)}</td>
              <td class="num">{p.lag == null ? '—' : formatInt(p.lag)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The sinks writing this stream out (CREATE SINK ... FROM it). */
function SinksCard({ sinks }: { sinks: Sink[] }) {
  return (
    <section class="card" data-testid="sinks">
      <h2>Sinks</h2>
      <table class="table compact">
        <thead>
          <tr>
            <th scope="col">Sink</th>
            <th scope="col">Writes to</th>
            <th scope="col">State</th>
            <th scope="col" class="num">Rows written</th>
            <th scope="col" class="num">Lag</th>
          </tr>
        </thead>
        <tbody>
          {sinks.map((k) => (
            <tr>
              <td class="mono">{k.name}</td>
              <td class="mono">
                {k.connector} {k.target}
              </td>
              <td title={k.error ?? undefined}>
                {k.state}
                {k.error && <div class="error-box">{k.error}</div>}
              </td>
              <td class="num">{formatInt(k.rows ?? 0)}</td>
              <td class="num">{formatInt(k.lag ?? 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
