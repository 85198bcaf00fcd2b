// Handing SQL to the workspace from another page ("Query this stream"): kept in
// sessionStorage across the route change, taken once by the workspace.

const KEY = 'weir.pending-sql';
const DRAFT = 'weir.draft';

export function openInWorkspace(sql: string): void {
  sessionStorage.setItem(KEY, sql);
  location.hash = '#/';
}

export function takePending(): string | null {
  const sql = sessionStorage.getItem(KEY);
  if (sql !== null) sessionStorage.removeItem(KEY);
  return sql;
}

export function loadDraft(): string | null {
  return localStorage.getItem(DRAFT);
}

export function saveDraft(sql: string): void {
  try {
    localStorage.setItem(DRAFT, sql);
  } catch {
    // Storage disabled: the draft lives for this page only.
  }
}
