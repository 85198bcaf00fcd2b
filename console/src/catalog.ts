// What the server holds now (streams and views with their columns), for the editor's
// completion and the workspace's schema list. Refreshed after each run.

import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import type { SQLNamespace } from '@codemirror/lang-sql';
import { api } from './api/client';
import type { Stream, View } from './api/types';

export interface Catalog {
  streams: Stream[];
  views: View[];
  /** For completion: each stream and view with its columns. */
  schema: SQLNamespace;
  refresh(): void;
  error: unknown;
}

const HIDDEN = ['_partition', '_offset', '_ingest_time'];

export function useCatalog(): Catalog {
  const [streams, setStreams] = useState<Stream[]>([]);
  const [views, setViews] = useState<View[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const refresh = useCallback(() => {
    Promise.all([api.streams(), api.views()])
      .then(([s, v]) => {
        setStreams(s);
        setViews(v);
        setError(undefined);
      })
      .catch(setError);
  }, []);
  useEffect(refresh, [refresh]);
  const schema = useMemo(() => {
    const ns: Record<string, SQLNamespace> = {};
    for (const s of streams) {
      ns[s.name] = {
        self: { label: s.name, type: 'type', detail: 'stream' },
        children: [
          ...s.columns.map((c) => ({ label: c.name, type: 'property', detail: c.type })),
          ...HIDDEN.map((h) => ({ label: h, type: 'property', detail: 'hidden', boost: -1 })),
        ],
      };
    }
    for (const v of views) {
      if (!v.name) continue;
      ns[v.name] = {
        self: { label: v.name, type: 'type', detail: 'view' },
        children: (v.columns ?? []).map((c) => ({ label: c.name, type: 'property', detail: c.type })),
      };
    }
    return ns as SQLNamespace;
  }, [streams, views]);
  return { streams, views, schema, refresh, error };
}
