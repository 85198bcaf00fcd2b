// One dashboard panel: its title, its live data drawn as a chart, a single number or a
// table, and buttons to edit or delete it.

import { useMemo } from 'preact/hooks';
import type { Panel } from '../api/types';
import { Chart } from '../components/Chart';
import { ResultGrid } from '../components/ResultGrid';
import { ConfirmButton } from '../components/common';
import { buildChartData, chooseSeries, pickNumber, type ChartOptions } from '../lib/chart';
import { formatCell, formatInt } from '../lib/format';
import { stripLocationPrefix } from '../lib/sqltext';
import { usePanelData } from './usePanelData';

/** A single number as big text: integers with separators, the rest as in a grid. */
function bigValue(v: unknown): string {
  return typeof v === 'number' && Number.isInteger(v) ? formatInt(v) : formatCell(v);
}

export function PanelView({ panel, onEdit, onDelete }: { panel: Panel; onEdit: () => void; onDelete: () => void }) {
  const data = usePanelData(panel.sql);
  const options = (panel.options ?? {}) as ChartOptions & { wide?: boolean };
  const chartable = panel.chart === 'line' || panel.chart === 'area' || panel.chart === 'bar';
  const chart = useMemo(() => {
    if (!chartable || data.columns.length === 0) return null;
    return buildChartData(data.columns, data.rows, chooseSeries(data.columns, options));
    // Options compared by value: the panel object is rebuilt on every save.
  }, [data.columns, data.rows, chartable, JSON.stringify(options)]);
  const number = panel.chart === 'number' ? pickNumber(data.columns, data.rows, options) : null;

  return (
    <article
      class={`panel ${options.wide ? 'wide' : ''}`}
      data-chart={panel.chart}
      data-rows={data.rows.length}
      aria-label={panel.title || 'Panel'}
    >
      <header class="panel-head">
        <h2 title={panel.sql}>{panel.title || panel.sql}</h2>
        <span class={`panel-mode ${data.mode}`} title={data.mode === 'push' ? 'Push query: rows stream in' : 'Re-run every 2 s'}>
          {data.mode === 'push' ? '● live' : '↻ 2 s'}
        </span>
        <div class="panel-actions">
          <button type="button" class="btn small ghost" onClick={onEdit}>
            Edit
          </button>
          <ConfirmButton label="Delete" confirm="Delete?" class="small ghost" onConfirm={onDelete} />
        </div>
      </header>
      <div class="panel-body">
        {data.error ? (
          <div class="error-box" role="alert">
            {stripLocationPrefix(data.error.message)}
          </div>
        ) : data.columns.length === 0 ? (
          <div class="loading">{data.mode === 'push' ? 'Waiting for the push query to start…' : 'Loading…'}</div>
        ) : chart ? (
          chart.series.length === 0 ? (
            <div class="hint">No numeric column to draw. Pick a table, or name the columns in the panel's options.</div>
          ) : (
            <>
              <Chart data={chart} kind={panel.chart as 'line' | 'area' | 'bar'} />
              {chart.xs.length === 0 && <div class="hint overlay">No rows yet.</div>}
            </>
          )
        ) : panel.chart === 'number' ? (
          <div class="big-number" data-value={number ? String(number.value) : ''}>
            <div class="big-value">{number ? bigValue(number.value) : '—'}</div>
            <div class="big-label">{number ? number.label : 'no rows yet'}</div>
          </div>
        ) : (
          <ResultGrid columns={data.columns} rows={data.rows} limit={200} newestFirst={data.mode === 'push'} caption={panel.title} />
        )}
      </div>
    </article>
  );
}
