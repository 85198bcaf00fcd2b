// Saved dashboards, and a form to create one (PUT /v1/dashboards/{id}, the id a slug of
// its title).

import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { Empty, ErrorBox, Loading, PageHeader } from '../components/common';
import { usePoll, useTitle } from '../hooks';
import { href, slugFor } from '../lib/route';

export function DashboardList() {
  useTitle('Dashboards');
  const { data, error } = usePoll(() => api.dashboards(), 5000);
  const [title, setTitle] = useState('');
  const [busy, setBusy] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    const name = title.trim();
    if (!name) return;
    setBusy(true);
    setCreateError(null);
    try {
      const existing = await api.dashboards();
      const id = slugFor(name, existing.map((d) => d.id ?? ''));
      await api.saveDashboard(id, { title: name, panels: [] });
      location.hash = href.dashboard(id);
    } catch (err) {
      setCreateError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page">
      <PageHeader title="Dashboards" />
      <form class="card inline-form" onSubmit={create} aria-label="Create a dashboard">
        <label for="new-dashboard">New dashboard</label>
        <input
          id="new-dashboard"
          type="text"
          placeholder="Title, e.g. Clicks overview"
          value={title}
          onInput={(e) => setTitle((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="btn primary" disabled={busy || !title.trim()}>
          Create
        </button>
      </form>
      <ErrorBox error={createError} />
      <ErrorBox error={error} />
      {!data && !error && <Loading />}
      {data && data.length === 0 && (
        <Empty>No dashboards yet. A dashboard keeps live charts of SQL results; they are saved on the server.</Empty>
      )}
      {data && data.length > 0 && (
        <ul class="card-list">
          {data.map((d) => (
            <li>
              <a class="dash-card" href={href.dashboard(d.id ?? '')}>
                <span class="dash-title">{d.title || d.id}</span>
                <span class="muted small">
                  {d.panels.length} {d.panels.length === 1 ? 'panel' : 'panels'} · {d.panels.map((p) => p.chart).join(', ') || 'empty'}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
