// The workspace's side panel: streams and views with their columns (click a name to
// insert it), example statements, and the history of past runs (click to reuse).

import type { Catalog } from '../catalog';
import type { HistoryEntry } from '../lib/history';
import { href } from '../lib/route';
import { oneLine } from '../lib/sqltext';

const EXAMPLES: { title: string; sql: string }[] = [
  {
    title: 'Create a stream',
    sql: "CREATE STREAM clicks (page TEXT, user_id BIGINT, ts TIMESTAMP,\n  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 2);",
  },
  {
    title: 'Insert rows',
    sql: "INSERT INTO clicks VALUES ('/home', 1, '2024-01-01 00:00:01'), ('/cart', 2, '2024-01-01 00:00:04'),\n  ('/home', 3, '2024-01-01 00:00:12');",
  },
  {
    title: 'A windowed view',
    sql: "CREATE MATERIALIZED VIEW per_page AS\nSELECT window_start, window_end, page, count(*) AS n\nFROM TUMBLE(clicks, ts, INTERVAL '10' SECOND)\nGROUP BY window_start, window_end, page;",
  },
  { title: 'Wait for queries, then read', sql: 'FLUSH;\nSELECT * FROM per_page ORDER BY window_start, page;' },
  { title: 'Watch rows arrive (push)', sql: 'SELECT * FROM clicks EMIT CHANGES;' },
  { title: 'What is running', sql: 'SHOW STREAMS;\nSHOW QUERIES;' },
];

function ago(at: number): string {
  const s = Math.round((Date.now() - at) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}

export function Sidebar({
  catalog,
  history,
  onInsert,
  onUse,
  onClearHistory,
}: {
  catalog: Catalog;
  history: HistoryEntry[];
  onInsert: (text: string) => void;
  onUse: (sql: string) => void;
  onClearHistory: () => void;
}) {
  const objects = [
    ...catalog.streams.map((s) => ({ name: s.name, kind: 'stream', columns: s.columns, link: href.stream(s.name) })),
    ...catalog.views.map((v) => ({ name: v.name ?? '', kind: 'view', columns: v.columns ?? [], link: href.query(v.name ?? '') })),
  ];
  return (
    <aside class="side">
      <section class="side-section" aria-labelledby="side-schema">
        <h2 id="side-schema">Streams and views</h2>
        {objects.length === 0 ? (
          <p class="hint">Nothing yet. Start with an example below.</p>
        ) : (
          <ul class="schema-list">
            {objects.map((o) => (
              <li>
                <details>
                  <summary>
                    <span class="schema-name">{o.name}</span>
                    <span class="schema-kind">{o.kind}</span>
                  </summary>
                  <ul class="schema-cols">
                    {o.columns.map((c) => (
                      <li>
                        <button type="button" class="link mono" onClick={() => onInsert(c.name)} title="Insert into the editor">
                          {c.name}
                        </button>
                        <span class="col-type">{c.type}</span>
                      </li>
                    ))}
                  </ul>
                  <div class="schema-actions">
                    <button type="button" class="link" onClick={() => onInsert(o.name)}>Insert name</button>
                    <button type="button" class="link" onClick={() => onUse(`SELECT * FROM ${o.name} LIMIT 100;`)}>
                      Select rows
                    </button>
                    <a href={o.link}>Details</a>
                  </div>
                </details>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section class="side-section" aria-labelledby="side-examples">
        <h2 id="side-examples">Examples</h2>
        <ul class="example-list">
          {EXAMPLES.map((ex) => (
            <li>
              <button type="button" class="link" onClick={() => onUse(ex.sql)} title={ex.sql}>
                {ex.title}
              </button>
            </li>
          ))}
        </ul>
      </section>
      <section class="side-section" aria-labelledby="side-history">
        <h2 id="side-history">
          History
          {history.length > 0 && (
            <button type="button" class="link small" onClick={onClearHistory}>
              Clear
            </button>
          )}
        </h2>
        {history.length === 0 ? (
          <p class="hint">Statements you run appear here.</p>
        ) : (
          <ul class="history-list">
            {history.slice(0, 30).map((h) => (
              <li>
                <button type="button" class={`history-item ${h.ok ? '' : 'failed'}`} onClick={() => onUse(h.sql)} title="Put back in the editor">
                  <code>{oneLine(h.sql).slice(0, 140) || h.sql.slice(0, 140)}</code>
                  <span class="history-meta">{h.ok ? ago(h.at) : `failed · ${ago(h.at)}`}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </section>
    </aside>
  );
}
