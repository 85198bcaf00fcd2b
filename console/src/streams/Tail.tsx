// A live tail of a stream: the last few records of each partition, then every new one,
// read by polling GET /v1/streams/{name}/records from each partition's next offset.

import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { Stream, StreamRecord } from '../api/types';
import { ErrorBox } from '../components/common';
import { formatCell } from '../lib/format';
import { formatTimestamp } from '../lib/time';

const BACKLOG = 5;
const KEEP = 200;

export function Tail({ stream }: { stream: Stream }) {
  const [records, setRecords] = useState<StreamRecord[]>([]);
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const next = useRef(new Map<number, number>());
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout>;
    next.current = new Map();
    setRecords([]);
    const poll = async () => {
      if (!pausedRef.current && !document.hidden) {
        try {
          const fresh: StreamRecord[] = [];
          const info = await api.stream(stream.name);
          for (const p of info.partitions) {
            const partition = p.partition ?? 0;
            const committed = p.committed_offset ?? 0;
            let from = next.current.get(partition);
            if (from === undefined) from = Math.max(p.earliest_offset ?? 0, committed - BACKLOG);
            if (from >= committed) {
              next.current.set(partition, from);
              continue;
            }
            const page = await api.records(stream.name, partition, from, 100);
            fresh.push(...(page.records ?? []));
            next.current.set(partition, page.next_offset ?? from);
          }
          if (!alive) return;
          setError(undefined);
          if (fresh.length) {
            fresh.sort((a, b) => (a.ingest_time ?? '').localeCompare(b.ingest_time ?? '') || (a.offset ?? 0) - (b.offset ?? 0));
            setRecords((rs) => [...fresh.reverse(), ...rs].slice(0, KEEP));
          }
        } catch (e) {
          if (alive) setError(e);
        }
      }
      if (alive) timer = setTimeout(poll, 1000);
    };
    void poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [stream.name]);

  const cols = stream.columns;
  return (
    <div class="tail" data-records={records.length}>
      <div class="section-bar">
        <span class="muted small">
          {paused ? 'Paused' : 'Following new records'} · newest first · the last {BACKLOG} per partition to start
        </span>
        <button type="button" class="btn small" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </div>
      <ErrorBox error={error} />
      <div class="grid-wrap tall">
        <table class="grid">
          <thead>
            <tr>
              <th scope="col" class="num">partition</th>
              <th scope="col" class="num">offset</th>
              <th scope="col">ingested</th>
              {cols.map((c) => (
                <th scope="col">
                  <span class="col-name">{c.name}</span>
                  <span class="col-type">{c.type}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {records.map((r) => (
              <tr>
                <td class="num">{r.partition}</td>
                <td class="num">{r.offset}</td>
                <td class="muted">{r.ingest_time ? formatTimestamp(r.ingest_time) : ''}</td>
                {cols.map((c) => {
                  const v = r.value?.[c.name];
                  return <td class={v === null || v === undefined ? 'null' : ''}>{formatCell(v, c.type)}</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
        {records.length === 0 && <div class="grid-empty">No records yet. Produce one above.</div>}
      </div>
    </div>
  );
}
