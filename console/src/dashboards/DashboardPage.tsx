// One dashboard: its panels in a responsive grid, each updating live; adding, editing
// and deleting panels saves the whole dashboard with PUT /v1/dashboards/{id}.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { Dashboard, Panel } from '../api/types';
import type { Catalog } from '../catalog';
import { ConfirmButton, Empty, ErrorBox, Loading, PageHeader } from '../components/common';
import { useTitle } from '../hooks';
import { href } from '../lib/route';
import { PanelForm } from './PanelForm';
import { PanelView } from './PanelView';

export function DashboardPage({ id, catalog }: { id: string; catalog: Catalog }) {
  const [dash, setDash] = useState<Dashboard | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [saveError, setSaveError] = useState<unknown>(null);
  // null: no form; -1: adding; otherwise the index of the panel being edited.
  const [editing, setEditing] = useState<number | null>(null);
  useTitle(dash?.title ?? id);

  useEffect(() => {
    setDash(null);
    setError(null);
    api.dashboard(id).then(setDash, setError);
  }, [id]);

  const save = async (next: Dashboard) => {
    setSaveError(null);
    try {
      const { id: _ignored, ...body } = next;
      void _ignored;
      await api.saveDashboard(id, body as Dashboard);
      setDash(next);
      return true;
    } catch (e) {
      setSaveError(e);
      return false;
    }
  };

  const savePanel = async (panel: Panel) => {
    if (!dash) return;
    const panels = [...dash.panels];
    if (editing === null || editing < 0) panels.push(panel);
    else panels[editing] = panel;
    if (await save({ ...dash, panels })) setEditing(null);
  };

  return (
    <div class="page">
      <PageHeader kicker={<a href={href.dashboards()}>Dashboards</a>} title={dash?.title ?? id}>
        {dash && (
          <>
            <button type="button" class="btn primary" onClick={() => setEditing(-1)} disabled={editing !== null}>
              Add panel
            </button>
            <ConfirmButton
              label="Delete dashboard"
              confirm="Delete it? Click again"
              onConfirm={async () => {
                await api.deleteDashboard(id);
                location.hash = href.dashboards();
              }}
            />
          </>
        )}
      </PageHeader>
      <ErrorBox error={error} />
      <ErrorBox error={saveError} title="Not saved:" />
      {!dash && !error && <Loading />}
      {dash && editing !== null && (
        <PanelForm
          key={editing}
          panel={editing >= 0 ? dash.panels[editing] : undefined}
          catalog={catalog}
          onSave={savePanel}
          onCancel={() => setEditing(null)}
        />
      )}
      {dash && dash.panels.length === 0 && editing === null && (
        <Empty>
          This dashboard has no panels yet.{' '}
          <button type="button" class="link" onClick={() => setEditing(-1)}>
            Add one
          </button>{' '}
          from a SQL query: a line, area or bar chart over time, a single number, or a table.
        </Empty>
      )}
      {dash && dash.panels.length > 0 && (
        <div class="panel-grid">
          {dash.panels.map((p, i) => (
            <PanelView
              // Keyed by SQL (not position) so deleting one panel does not restart the others.
              key={`${p.sql}#${dash.panels.slice(0, i).filter((o) => o.sql === p.sql).length}`}
              panel={p}
              onEdit={() => setEditing(i)}
              onDelete={() => void save({ ...dash, panels: dash.panels.filter((_, j) => j !== i) })}
            />
          ))}
        </div>
      )}
    </div>
  );
}
