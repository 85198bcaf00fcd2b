// The SQL workspace, where the console opens: an editor, Run (Ctrl/Cmd+Enter), results
// per statement, live push queries, and on the side the catalog, examples and history.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api } from '../api/client';
import type { SqlResult } from '../api/types';
import type { Catalog } from '../catalog';
import { Editor, type EditorHandle } from '../components/Editor';
import { useTitle } from '../hooks';
import { addHistory, clearHistory, loadHistory, type HistoryEntry } from '../lib/history';
import { errorRange, offsetOf } from '../lib/sqltext';
import type { LiveStatus } from './LiveResult';
import { Results, type Entry } from './Results';
import { Sidebar } from './Sidebar';
import { loadDraft, saveDraft, takePending } from './draft';
import { planRun } from './plan';

const WELCOME = `-- Welcome to Weir. Write SQL here and press Ctrl+Enter (⌘+Enter on a Mac) to run it.
-- New here? Pick one of the examples, or try:
SHOW STREAMS;
`;

/**
 * The last run's results, kept while the console is open so that coming back to the
 * workspace from another page shows them again. A push query stops when the page is
 * left (its connection closes), so it comes back as a note.
 */
let kept: { entries: Entry[]; summary: string; lastRun: { text: string; offset: number } } = {
  entries: [],
  summary: '',
  lastRun: { text: '', offset: 0 },
};

function restore(): Entry[] {
  return kept.entries.map((e) =>
    e.kind === 'live' ? { kind: 'note', message: `The push query "${e.stmt.sql}" stopped when you left the workspace; run it again to resume.` } : e,
  );
}

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform);

export function Workspace({ catalog }: { catalog: Catalog }) {
  useTitle('SQL');
  const editor = useRef<EditorHandle | null>(null);
  const [initial] = useState(() => takePending() ?? loadDraft() ?? WELCOME);
  const [entries, setEntries] = useState<Entry[]>(restore);
  const [running, setRunning] = useState(false);
  const [summary, setSummary] = useState(kept.summary);
  const [history, setHistory] = useState<HistoryEntry[]>(() => loadHistory());
  const [liveStatus, setLiveStatus] = useState<LiveStatus | null>(null);
  const runId = useRef(0);
  // The text and offset of the last run, to place error positions in the editor.
  const lastRun = useRef(kept.lastRun);

  useEffect(() => saveDraft(initial), [initial]);
  useEffect(() => {
    kept = { entries, summary, lastRun: lastRun.current };
  }, [entries, summary]);

  const markError = (where: { line: number; column: number } | undefined) => {
    const ed = editor.current;
    if (!ed || !where) return;
    const { text, offset } = lastRun.current;
    const at = offsetOf(text, where.line, where.column);
    const range = errorRange(text, at);
    ed.markError({ from: offset + range.from, to: offset + range.to });
  };

  const run = async (text: string, offset: number) => {
    const id = ++runId.current;
    editor.current?.markError(null);
    lastRun.current = { text, offset };
    const plan = planRun(text);
    if (plan.statements.length === 0) {
      setEntries([{ kind: 'problem', message: 'Nothing to run: write a statement first.' }]);
      return;
    }
    if (plan.problem) {
      setEntries([{ kind: 'problem', message: plan.problem }]);
      return;
    }
    setRunning(true);
    setSummary('');
    setLiveStatus(null);
    const started = performance.now();
    const out: Entry[] = [];
    let ok = true;
    if (plan.batch !== null) {
      try {
        const result = await api.sql(plan.batch);
        const results: SqlResult[] = result.kind === 'multi' ? (result.results ?? []) : [result];
        results.forEach((r, i) => out.push({ kind: 'result', stmt: plan.batchStatements[i], index: i, result: r }));
      } catch (e) {
        ok = false;
        const error = e instanceof ApiError ? e : new ApiError(0, { code: 'error', message: String(e) });
        const index = error.body.statement !== undefined ? error.body.statement - 1 : plan.batchStatements.length === 1 ? 0 : undefined;
        // The statements before the failing one ran; the server does not return their results.
        for (let i = 0; i < (index ?? 0); i++) out.push({ kind: 'ran', stmt: plan.batchStatements[i], index: i });
        const pos = error.body.position;
        const where = pos?.line !== undefined ? { line: pos.line, column: pos.column ?? 1 } : undefined;
        out.push({ kind: 'error', stmt: index !== undefined ? plan.batchStatements[index] : undefined, index, error, where });
        if (id === runId.current) setTimeout(() => markError(where));
      }
    }
    if (id !== runId.current) return;
    if (ok && plan.push) {
      out.push({ kind: 'live', stmt: plan.push, index: plan.batchStatements.length, key: id });
    }
    setEntries(out);
    setRunning(false);
    const ms = performance.now() - started;
    const n = plan.statements.length;
    setSummary(
      `${ok ? '' : 'Failed · '}${n} ${n === 1 ? 'statement' : 'statements'} · ${ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`}`,
    );
    setHistory((h) => addHistory(h, { sql: text.trim(), at: Date.now(), ok }));
    catalog.refresh();
  };

  const runAll = () => {
    const v = editor.current?.view;
    if (!v) return;
    const sel = v.state.selection.main;
    if (sel.empty) void run(v.state.doc.toString(), 0);
    else void run(v.state.sliceDoc(sel.from, sel.to), sel.from);
  };

  const onLiveError = (error: ApiError, entry: Extract<Entry, { kind: 'live' }>) => {
    const { text } = lastRun.current;
    // Errors of a push query are about its own text: place them within the statement.
    const pos = error.body.position;
    let where: { line: number; column: number } | undefined;
    if (pos?.line !== undefined) {
      const before = text.slice(0, entry.stmt.from);
      const lineBase = before.split('\n').length - 1;
      const colBase = pos.line === 1 ? entry.stmt.from - (before.lastIndexOf('\n') + 1) : 0;
      where = { line: pos.line + lineBase, column: (pos.column ?? 1) + colBase };
    }
    setEntries((es) =>
      es.map((e) => (e === entry ? { kind: 'error', stmt: entry.stmt, index: entry.index, error, where } : e)),
    );
    setHistory((h) => addHistory(h, { sql: text.trim(), at: Date.now(), ok: false }));
    setTimeout(() => markError(where));
  };

  const use = (sql: string) => {
    editor.current?.setText(sql);
    editor.current?.focus();
  };

  return (
    <div class="workspace">
      <section class="work" aria-label="SQL workspace">
        <div class="toolbar">
          <button type="button" class="btn primary" onClick={runAll} disabled={running} title={`Run (${isMac ? '⌘' : 'Ctrl'}+Enter)`}>
            {running ? 'Running…' : 'Run'}
          </button>
          <span class="kbd-hint">
            <kbd>{isMac ? '⌘' : 'Ctrl'}</kbd>+<kbd>Enter</kbd> runs everything, or just the selection
          </span>
          <span class="toolbar-status" data-status={liveStatus ?? ''}>{summary}</span>
        </div>
        <Editor
          initial={initial}
          label="SQL editor"
          schema={catalog.schema}
          onChange={saveDraft}
          onRun={(text, offset) => void run(text, offset)}
          handle={(h) => (editor.current = h)}
          minLines={8}
        />
        {entries.length > 0 ? (
          <Results
            entries={entries}
            onShowError={(e) => {
              markError(e.where);
              editor.current?.focus();
            }}
            onLiveError={onLiveError}
            onLiveStatus={setLiveStatus}
          />
        ) : (
          <div class="results-empty">Results appear here.</div>
        )}
      </section>
      <Sidebar
        catalog={catalog}
        history={history}
        onInsert={(t) => editor.current?.insert(t)}
        onUse={use}
        onClearHistory={() => setHistory(clearHistory())}
      />
    </div>
  );
}
