// Small hooks shared by the pages: the current hash route, and polling the API.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { parseRoute, type Route } from './lib/route';

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export interface Polled<T> {
  data: T | undefined;
  error: unknown;
  /** Fetches again now. */
  refresh(): void;
}

/**
 * Calls `load` now and every `intervalMs` while the page is visible, keeping the last
 * good value (and the last error, cleared on success). Restarts when `deps` change.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const tick = useRef<() => void>(() => {});
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight = false;
    setData(undefined);
    setError(undefined);
    const run = async () => {
      clearTimeout(timer);
      if (inFlight) return;
      inFlight = true;
      try {
        const value = await load();
        if (alive) {
          setData(value);
          setError(undefined);
        }
      } catch (e) {
        if (alive) setError(e);
      } finally {
        inFlight = false;
        if (alive) timer = setTimeout(schedule, intervalMs);
      }
    };
    const schedule = () => {
      if (document.hidden) timer = setTimeout(schedule, intervalMs);
      else void run();
    };
    tick.current = () => void run();
    void run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, deps);
  const refresh = useCallback(() => tick.current(), []);
  return { data, error, refresh };
}

/** Sets the document title for a page. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Weir` : 'Weir';
  }, [title]);
}
