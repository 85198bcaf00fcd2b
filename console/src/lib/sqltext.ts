// SQL text as the editor sees it: statements split at `;` (outside strings and
// comments), positions converted between the server's 1-based line/column and offsets,
// and which statements are push queries. Knows nothing about the server or the editor.

export interface Statement {
  /** The statement's text, trimmed, without its `;`. */
  sql: string;
  /** Offset of its first character in the whole text. */
  from: number;
  /** Offset just past its last character. */
  to: number;
}

/**
 * Splits `text` into statements at `;` that are outside quotes and comments. Statements
 * holding nothing but whitespace and comments are left out.
 */
export function splitStatements(text: string): Statement[] {
  const out: Statement[] = [];
  let start = 0;
  let hasCode = false;
  let i = 0;
  const push = (end: number) => {
    if (hasCode) {
      const raw = text.slice(start, end);
      const lead = raw.length - raw.trimStart().length;
      const sql = raw.trim();
      out.push({ sql, from: start + lead, to: start + lead + sql.length });
    }
    hasCode = false;
  };
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '-' && next === '-') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl + 1;
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === "'" || c === '"') {
      hasCode = true;
      i = skipQuoted(text, i, c);
    } else if (c === ';') {
      push(i);
      start = i + 1;
      i++;
    } else {
      if (!/\s/.test(c)) hasCode = true;
      i++;
    }
  }
  push(text.length);
  return out;
}

/** Index just past the quoted run that starts at `i` (a doubled quote escapes it). */
function skipQuoted(text: string, i: number, quote: string): number {
  let j = i + 1;
  while (j < text.length) {
    if (text[j] === quote) {
      if (text[j + 1] === quote) j += 2;
      else return j + 1;
    } else j++;
  }
  return j;
}

/** `text` with comments removed and string literals emptied, for keyword tests. */
export function stripLiterals(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '-' && next === '-') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
      out += ' ';
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
      out += ' ';
    } else if (c === "'") {
      i = skipQuoted(text, i, c);
      out += "''";
    } else if (c === '"') {
      const end = skipQuoted(text, i, c);
      out += text.slice(i, end);
      i = end;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * Whether a statement is a push query: a SELECT (or WITH ... SELECT) ending in `EMIT ...`.
 * `CREATE STREAM s AS SELECT ... EMIT CHANGES` is not one: it creates a derived stream.
 */
export function isPushQuery(sql: string): boolean {
  const code = stripLiterals(sql).trim();
  return /^(select|with)\b/i.test(code) && /\bemit\s+(changes|final|on\s+window\s+close)\s*$/i.test(code);
}

/** Offset in `text` of a 1-based line and column, clamped to the text. */
export function offsetOf(text: string, line: number, column: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  const lineEnd = text.indexOf('\n', offset);
  const end = lineEnd < 0 ? text.length : lineEnd;
  return Math.min(offset + Math.max(column, 1) - 1, end);
}

/** The 1-based line and column of an offset. */
export function lineColumnOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/**
 * The range to underline for an error at `offset`: the word (or quoted name) that starts
 * there, else the rest of the statement's line, and at least one character.
 */
export function errorRange(text: string, offset: number): { from: number; to: number } {
  const rest = text.slice(offset);
  const word = /^("[^"]*"|'[^']*'|[\w.]+)/.exec(rest);
  if (word) return { from: offset, to: offset + word[0].length };
  const nl = rest.indexOf('\n');
  const lineRest = nl < 0 ? rest : rest.slice(0, nl);
  const len = lineRest.trimEnd().length;
  if (len > 0) return { from: offset, to: offset + len };
  // At the end of a line or of the text: underline the character before instead.
  return offset > 0 ? { from: offset - 1, to: offset } : { from: 0, to: Math.min(1, text.length) };
}

/** Server messages repeat where the error is ("statement 2 (line 3): ..."); the console shows that itself. */
export function stripLocationPrefix(message: string): string {
  return message.replace(/^statement \d+ \(line \d+\):\s*/, '');
}

/** A statement for display on one line: leading comments dropped, whitespace collapsed. */
export function oneLine(sql: string): string {
  let s = sql.trim();
  for (;;) {
    if (s.startsWith('--')) {
      const nl = s.indexOf('\n');
      s = nl < 0 ? '' : s.slice(nl + 1).trim();
    } else if (s.startsWith('/*')) {
      const end = s.indexOf('*/');
      s = end < 0 ? '' : s.slice(end + 2).trim();
    } else break;
  }
  return s.replace(/\s+/g, ' ');
}
