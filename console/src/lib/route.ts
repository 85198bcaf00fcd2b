// Hash routes of the console: `#/` is the SQL workspace, then streams, queries and
// dashboards, each with a page per item.

export type Route =
  | { page: 'workspace' }
  | { page: 'streams' }
  | { page: 'stream'; name: string }
  | { page: 'queries' }
  | { page: 'query'; id: string }
  | { page: 'dashboards' }
  | { page: 'dashboard'; id: string }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\?.*$/, '') || '/';
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [section, item, ...rest] = parts;
  if (rest.length > 0) return { page: 'not-found', path };
  switch (section) {
    case undefined:
      return { page: 'workspace' };
    case 'streams':
      return item === undefined ? { page: 'streams' } : { page: 'stream', name: item };
    case 'queries':
      return item === undefined ? { page: 'queries' } : { page: 'query', id: item };
    case 'dashboards':
      return item === undefined ? { page: 'dashboards' } : { page: 'dashboard', id: item };
    default:
      return { page: 'not-found', path };
  }
}

export const href = {
  workspace: () => '#/',
  streams: () => '#/streams',
  stream: (name: string) => `#/streams/${encodeURIComponent(name)}`,
  queries: () => '#/queries',
  query: (id: string) => `#/queries/${encodeURIComponent(id)}`,
  dashboards: () => '#/dashboards',
  dashboard: (id: string) => `#/dashboards/${encodeURIComponent(id)}`,
};

/** A dashboard id from its title: a slug (`[a-z0-9-]`), made unique among `taken`. */
export function slugFor(title: string, taken: Iterable<string>): string {
  const base =
    title
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'dashboard';
  const used = new Set(taken);
  if (!used.has(base)) return base;
  for (let i = 2; ; i++) if (!used.has(`${base}-${i}`)) return `${base}-${i}`;
}
