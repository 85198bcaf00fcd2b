// Adding or editing a panel: a title, its SQL (with completion), the chart type and
// optional column choices.

import { useRef, useState } from 'preact/hooks';
import type { Panel } from '../api/types';
import type { Catalog } from '../catalog';
import { Editor } from '../components/Editor';

type ChartType = Panel['chart'];

const CHARTS: { value: ChartType; label: string }[] = [
  { value: 'line', label: 'Line chart' },
  { value: 'area', label: 'Area chart' },
  { value: 'bar', label: 'Bar chart' },
  { value: 'number', label: 'Single number' },
  { value: 'table', label: 'Table' },
];

function suggestSql(catalog: Catalog): string {
  const view = catalog.views[0];
  if (view?.name) {
    const cols = (view.columns ?? []).map((c) => c.name);
    const time = cols.find((c) => c === 'window_start') ?? cols[0];
    return `SELECT * FROM ${view.name} ORDER BY ${time}`;
  }
  const stream = catalog.streams.find((s) => s.watermark?.column);
  if (stream) {
    return `SELECT window_start, window_end, count(*) AS n\nFROM TUMBLE(${stream.name}, ${stream.watermark!.column}, INTERVAL '1' MINUTE)\nGROUP BY window_start, window_end\nORDER BY window_start`;
  }
  return '';
}

export function PanelForm({
  panel,
  catalog,
  onSave,
  onCancel,
}: {
  panel?: Panel;
  catalog: Catalog;
  onSave: (panel: Panel) => void | Promise<void>;
  onCancel: () => void;
}) {
  const opts = (panel?.options ?? {}) as { x?: string; y?: string | string[]; group?: string; wide?: boolean };
  const [title, setTitle] = useState(panel?.title ?? '');
  const [sql, setSql] = useState(panel?.sql ?? suggestSql(catalog));
  const [chart, setChart] = useState<ChartType>(panel?.chart ?? 'line');
  const [x, setX] = useState(opts.x ?? '');
  const [y, setY] = useState(Array.isArray(opts.y) ? opts.y.join(', ') : (opts.y ?? ''));
  const [group, setGroup] = useState(opts.group ?? '');
  const [wide, setWide] = useState(!!opts.wide);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!sql.trim()) return;
    const options: Record<string, unknown> = { ...(panel?.options ?? {}) };
    for (const [key, value] of [['x', x.trim()], ['group', group.trim()]] as const) {
      if (value) options[key] = value;
      else delete options[key];
    }
    const ys = y.split(',').map((s) => s.trim()).filter(Boolean);
    if (ys.length) options.y = ys;
    else delete options.y;
    if (wide) options.wide = true;
    else delete options.wide;
    setBusy(true);
    try {
      await onSave({ ...panel, title: title.trim(), sql: sql.trim(), chart, ...(Object.keys(options).length ? { options } : { options: undefined }) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card panel-form" ref={form} onSubmit={submit} aria-label={panel ? 'Edit panel' : 'Add panel'}>
      <h2>{panel ? 'Edit panel' : 'Add a panel'}</h2>
      <div class="form-grid">
        <label>
          Title
          <input type="text" name="title" value={title} placeholder="Clicks per 10 s" onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Show as
          <select name="chart" value={chart} onChange={(e) => setChart((e.target as HTMLSelectElement).value as ChartType)}>
            {CHARTS.map((c) => (
              <option value={c.value}>{c.label}</option>
            ))}
          </select>
        </label>
      </div>
      <div class="field">
        <span class="field-label" id="panel-sql-label">SQL</span>
        <Editor initial={sql} label="Panel SQL" schema={catalog.schema} onChange={setSql} onRun={() => form.current?.requestSubmit()} minLines={4} />
        <p class="hint">
          A query is re-run every 2 s (good for views); a query ending in <code>EMIT CHANGES</code> streams live. Charts
          put the first timestamp column on the x axis and draw the numeric columns; a text column splits them into series.
        </p>
      </div>
      <details class="field">
        <summary>Columns (optional)</summary>
        <div class="form-grid three">
          <label>
            X column
            <input type="text" name="x" value={x} placeholder="window_start" onInput={(e) => setX((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            Y columns
            <input type="text" name="y" value={y} placeholder="n, total" onInput={(e) => setY((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            Split by
            <input type="text" name="group" value={group} placeholder="page" onInput={(e) => setGroup((e.target as HTMLInputElement).value)} />
          </label>
        </div>
        <label class="check">
          <input type="checkbox" checked={wide} onChange={(e) => setWide((e.target as HTMLInputElement).checked)} /> Wide panel
        </label>
      </details>
      <div class="form-row">
        <button type="submit" class="btn primary" disabled={busy || !sql.trim()}>
          {panel ? 'Save panel' : 'Add panel'}
        </button>
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
