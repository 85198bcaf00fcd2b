// How the workspace runs a script: ordinary statements go to POST /v1/sql together (the
// server runs them in order and stops at the first error); a push query, which never
// ends, must come last and runs over GET /v1/sql/stream.

import { isPushQuery, splitStatements, type Statement } from '../lib/sqltext';

export interface RunPlan {
  statements: Statement[];
  /** Text to POST (up to the push query), or null when there is nothing to post. */
  batch: string | null;
  /** Statements in `batch`, in order. */
  batchStatements: Statement[];
  push: Statement | null;
  /** Why the script cannot run as written. */
  problem?: string;
}

export function planRun(text: string): RunPlan {
  const statements = splitStatements(text);
  const pushAt = statements.findIndex((s) => isPushQuery(s.sql));
  if (pushAt >= 0 && pushAt < statements.length - 1) {
    return {
      statements,
      batch: null,
      batchStatements: [],
      push: null,
      problem: `Statement ${pushAt + 1} is a push query (EMIT …): it runs until you stop it, so it must be the last statement.`,
    };
  }
  const batchStatements = pushAt >= 0 ? statements.slice(0, pushAt) : statements;
  const end = batchStatements.length ? batchStatements[batchStatements.length - 1].to : 0;
  return {
    statements,
    // The text is sent as written (up to the push query) so the server's positions match it.
    batch: batchStatements.length ? text.slice(0, end) : null,
    batchStatements,
    push: pushAt >= 0 ? statements[pushAt] : null,
  };
}
