// The console's frame: a header with text navigation (SQL, Streams, Queries,
// Dashboards) and the page of the current hash route.

import { useCatalog } from './catalog';
import { useRoute } from './hooks';
import { href, type Route } from './lib/route';
import { DashboardList } from './dashboards/DashboardList';
import { DashboardPage } from './dashboards/DashboardPage';
import { QueryList } from './queries/QueryList';
import { QueryPage } from './queries/QueryPage';
import { StreamList } from './streams/StreamList';
import { StreamPage } from './streams/StreamPage';
import { Workspace } from './workspace/Workspace';
import { Empty } from './components/common';
import { api, type Me } from './api/client';

const NAV: { label: string; href: string; pages: Route['page'][] }[] = [
  { label: 'SQL', href: href.workspace(), pages: ['workspace'] },
  { label: 'Streams', href: href.streams(), pages: ['streams', 'stream'] },
  { label: 'Queries', href: href.queries(), pages: ['queries', 'query'] },
  { label: 'Dashboards', href: href.dashboards(), pages: ['dashboards', 'dashboard'] },
];

export function App({ me }: { me?: Me }) {
  const route = useRoute();
  const catalog = useCatalog();
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href.workspace()} aria-label="Weir home">
          <svg viewBox="0 0 32 32" width="22" height="22" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="currentColor" />
            <path d="M5 12c4 0 4 4 8 4s4-4 8-4 4 4 6 4M5 19c4 0 4 4 8 4s4-4 8-4 4 4 6 4" fill="none" stroke="#fff" stroke-width="2.4" stroke-linecap="round" />
          </svg>
          <span>Weir</span>
        </a>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <a href={n.href} class={n.pages.includes(route.page) ? 'active' : ''} aria-current={n.pages.includes(route.page) ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        {me?.auth_required && (
          <div class="who">
            <span class="muted small">
              {me.name} · {me.role}
            </span>
            <button class="link" type="button" onClick={() => api.logout().finally(() => location.reload())}>
              Log out
            </button>
          </div>
        )}
      </header>
      <main id="main" tabIndex={-1} data-page={route.page}>
        <Page route={route} catalog={catalog} />
      </main>
    </>
  );
}

function Page({ route, catalog }: { route: Route; catalog: ReturnType<typeof useCatalog> }) {
  switch (route.page) {
    case 'workspace':
      return <Workspace catalog={catalog} />;
    case 'streams':
      return <StreamList />;
    case 'stream':
      return <StreamPage key={route.name} name={route.name} />;
    case 'queries':
      return <QueryList />;
    case 'query':
      return <QueryPage key={route.id} id={route.id} />;
    case 'dashboards':
      return <DashboardList />;
    case 'dashboard':
      return <DashboardPage key={route.id} id={route.id} catalog={catalog} />;
    case 'not-found':
      return (
        <div class="page">
          <Empty>
            Nothing at <code>{route.path}</code>. <a href={href.workspace()}>Back to the SQL workspace</a>.
          </Empty>
        </div>
      );
  }
}
