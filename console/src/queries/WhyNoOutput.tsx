// The "Why no output yet?" panel of a query page: the explanation of whynooutput.ts,
// with the per-partition watermarks and open windows it is based on.

import type { Query } from '../api/types';
import { explainNoOutput, type SourceInfo } from '../lib/whynooutput';
import { formatInt } from '../lib/format';
import { formatDuration, formatRange, formatTimestamp, parseTimestamp, timeOfDay } from '../lib/time';

/** A timestamp as its time of day when it falls on the same day as `ref`. */
function short(ts: string, ref: string | null | undefined): string {
  return ref && ts.slice(0, 10) === ref.slice(0, 10) ? timeOfDay(ts) : formatTimestamp(ts);
}

/** Event time between the watermark and a window's end. */
function toGo(end: string, watermark: string | null | undefined): string {
  const e = parseTimestamp(end);
  const w = parseTimestamp(watermark);
  if (e === null || w === null) return '—';
  return e > w ? formatDuration(e - w) : 'closing';
}

export function WhyNoOutput({ query, source }: { query: Query; source: SourceInfo }) {
  const { headline, points } = explainNoOutput(query, source);
  const progress = query.progress ?? [];
  const windows = query.open_windows;
  const hasWatermarks = progress.some((p) => p.watermark !== undefined || p.idle !== undefined);
  // A query over several streams names each partition's stream.
  const manyStreams = new Set(progress.map((p) => p.stream)).size > 1;
  return (
    <section class="card why" aria-labelledby="why-title">
      <h2 id="why-title">Why no output yet?</h2>
      <p class="why-headline">{headline}</p>
      {points.length > 0 && (
        <ul class="why-points">
          {points.map((p) => (
            <li>{p}</li>
          ))}
        </ul>
      )}
      <div class="why-tables">
        {progress.length > 0 && (
          <div>
            <h3>Partitions</h3>
            <div class="table-wrap">
              <table class="table compact">
                <thead>
                  <tr>
                    {manyStreams && <th scope="col">Stream</th>}
                    <th scope="col" class="num">#</th>
                    <th scope="col" class="num">Processed</th>
                    <th scope="col" class="num">Committed</th>
                    <th scope="col" class="num">Lag</th>
                    {hasWatermarks && <th scope="col">Watermark</th>}
                  </tr>
                </thead>
                <tbody>
                  {progress.map((p) => (
                    <tr class={p.idle ? 'idle' : ''}>
                      {manyStreams && <td>{p.stream}</td>}
                      <td class="num">{p.partition}</td>
                      <td class="num">{formatInt(p.processed_offset)}</td>
                      <td class="num">{formatInt(p.committed_offset)}</td>
                      <td class="num">{formatInt(p.lag)}</td>
                      {hasWatermarks && (
                        <td class="mono small">
                          {p.watermark ? short(p.watermark, query.watermark) : <span class="muted">—</span>}
                          {p.idle && <span class="badge warn">idle</span>}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        )}
        {windows && (
          <div>
            <h3>Open windows</h3>
            {windows.length === 0 ? (
              <p class="hint">None.</p>
            ) : (
              <div class="table-wrap">
                <table class="table compact">
                  <thead>
                    <tr>
                      <th scope="col">{windows.some((w) => w.window_start) ? 'Window' : 'Window ends'}</th>
                      <th scope="col" class="num">Groups</th>
                      <th scope="col" class="num" title="How far the watermark still has to move">To go</th>
                    </tr>
                  </thead>
                  <tbody>
                    {windows.map((w) => (
                      <tr>
                        <td class="mono small">{w.window_start ? formatRange(w.window_start, w.window_end) : short(w.window_end, query.watermark)}</td>
                        <td class="num">{formatInt(w.groups)}</td>
                        <td class="num small">{toGo(w.window_end, query.watermark)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
        )}
      </div>
    </section>
  );
}
