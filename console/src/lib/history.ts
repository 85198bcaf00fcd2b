// The workspace's history of past runs, newest first, kept in localStorage.

export interface HistoryEntry {
  sql: string;
  /** Epoch ms of the run. */
  at: number;
  ok: boolean;
}

const KEY = 'weir.history';
export const HISTORY_LIMIT = 100;

export function loadHistory(storage: Pick<Storage, 'getItem'> = localStorage): HistoryEntry[] {
  try {
    const parsed = JSON.parse(storage.getItem(KEY) ?? '[]');
    return Array.isArray(parsed) ? parsed.filter((e) => typeof e?.sql === 'string') : [];
  } catch {
    return [];
  }
}

/** Adds a run on top, removing an older copy of the same SQL, and saves the list. */
export function addHistory(
  entries: HistoryEntry[],
  entry: HistoryEntry,
  storage: Pick<Storage, 'setItem'> = localStorage,
): HistoryEntry[] {
  const next = [entry, ...entries.filter((e) => e.sql !== entry.sql)].slice(0, HISTORY_LIMIT);
  try {
    storage.setItem(KEY, JSON.stringify(next));
  } catch {
    // Storage full or disabled: the history lives for this page only.
  }
  return next;
}

export function clearHistory(storage: Pick<Storage, 'removeItem'> = localStorage): HistoryEntry[] {
  storage.removeItem(KEY);
  return [];
}
