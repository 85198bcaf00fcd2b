// All streams with their size and how fast rows arrive (measured between polls, from
// the server's `rows_ingested` counter).

import { useRef } from 'preact/hooks';
import { api } from '../api/client';
import type { Stream } from '../api/types';
import { Empty, ErrorBox, Loading, PageHeader } from '../components/common';
import { usePoll, useTitle } from '../hooks';
import { formatBytes, formatInt, formatRate, RateMeter } from '../lib/format';
import { formatDuration } from '../lib/time';
import { href } from '../lib/route';
import { openInWorkspace } from '../workspace/draft';

export function retentionText(s: Stream): string {
  const parts = [s.retention_ms ? formatDuration(s.retention_ms) : '', s.retention_bytes ? formatBytes(s.retention_bytes) : ''].filter(Boolean);
  return parts.length ? parts.join(' or ') : 'unlimited';
}

export function StreamList() {
  useTitle('Streams');
  const meter = useRef(new RateMeter());
  const rates = useRef(new Map<string, number | undefined>());
  const { data, error } = usePoll(async () => {
    const streams = await api.streams();
    const now = Date.now();
    for (const s of streams) rates.current.set(s.name, meter.current.sample(s.name, s.rows_ingested ?? s.rows, now));
    return streams;
  }, 1000);

  return (
    <div class="page">
      <PageHeader title="Streams">
        <button
          type="button"
          class="btn"
          onClick={() =>
            openInWorkspace(
              "CREATE STREAM my_stream (id BIGINT, ts TIMESTAMP,\n  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 1);",
            )
          }
        >
          New stream…
        </button>
      </PageHeader>
      <ErrorBox error={error} />
      {!data && !error && <Loading />}
      {data && data.length === 0 && (
        <Empty>
          No streams yet. A stream is a partitioned, append-only log you can query with SQL.{' '}
          <a href={href.workspace()}>Create one in the SQL workspace</a>.
        </Empty>
      )}
      {data && data.length > 0 && (
        <section class="card table-wrap" aria-label="Streams">
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="num">Partitions</th>
                <th scope="col" class="num">Rows</th>
                <th scope="col" class="num">Size</th>
                <th scope="col" class="num">Rate</th>
                <th scope="col">Event time</th>
                <th scope="col">Key</th>
                <th scope="col">Retention</th>
              </tr>
            </thead>
            <tbody>
              {data.map((s) => (
                <tr>
                  <td>
                    <a class="strong" href={href.stream(s.name)}>{s.name}</a>
                  </td>
                  <td class="num">{s.partition_count ?? s.partitions.length}</td>
                  <td class="num">{formatInt(s.rows)}</td>
                  <td class="num">{formatBytes(s.bytes)}</td>
                  <td class="num" data-rate>{formatRate(rates.current.get(s.name))}</td>
                  <td class="mono small">{s.watermark?.expression ?? <span class="muted">none</span>}</td>
                  <td class="mono small">{s.key?.length ? s.key.join(', ') : <span class="muted">round-robin</span>}</td>
                  <td class="small">{retentionText(s)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </div>
  );
}
