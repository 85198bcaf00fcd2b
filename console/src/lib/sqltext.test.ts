import { describe, expect, it } from 'vitest';
import { errorRange, isPushQuery, lineColumnOf, offsetOf, oneLine, splitStatements, stripLocationPrefix } from './sqltext';

describe('splitStatements', () => {
  it('splits at semicolons and keeps offsets into the whole text', () => {
    const text = 'SELECT 1;\n  SELECT 2 ;SELECT 3';
    const parts = splitStatements(text);
    expect(parts.map((p) => p.sql)).toEqual(['SELECT 1', 'SELECT 2', 'SELECT 3']);
    for (const p of parts) expect(text.slice(p.from, p.to)).toBe(p.sql);
    expect(parts[1].from).toBe(12);
  });

  it('ignores semicolons in strings, quoted names and comments', () => {
    const text = "INSERT INTO t VALUES ('a;b', 'it''s;'); -- one; two\nSELECT \"x;y\" /* ; */ FROM t";
    expect(splitStatements(text).map((p) => p.sql)).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it''s;')",
      '-- one; two\nSELECT "x;y" /* ; */ FROM t',
    ]);
  });

  it('leaves out empty statements and comment-only tails', () => {
    expect(splitStatements(';; SELECT 1;;\n-- done\n').map((p) => p.sql)).toEqual(['SELECT 1']);
    expect(splitStatements('   ')).toEqual([]);
  });
});

describe('isPushQuery', () => {
  it('knows a SELECT ending in EMIT', () => {
    expect(isPushQuery('SELECT * FROM clicks EMIT CHANGES')).toBe(true);
    expect(isPushQuery('select a from t emit final -- live')).toBe(true);
    expect(isPushQuery('WITH x AS (SELECT 1) SELECT * FROM x EMIT ON WINDOW CLOSE')).toBe(true);
  });
  it('is not fooled by derived streams, strings or plain queries', () => {
    expect(isPushQuery('CREATE STREAM s AS SELECT * FROM t EMIT CHANGES')).toBe(false);
    expect(isPushQuery("SELECT 'EMIT CHANGES'")).toBe(false);
    expect(isPushQuery('SELECT * FROM emitters')).toBe(false);
  });
});

describe('positions', () => {
  const text = 'SELECT 1;\nSELECT 2;   SELECT nope FROM clicks';
  it('turns the server line/column into an offset and back', () => {
    const offset = offsetOf(text, 2, 13);
    expect(text.slice(offset, offset + 6)).toBe('SELECT');
    expect(lineColumnOf(text, offset)).toEqual({ line: 2, column: 13 });
  });
  it('clamps positions past the end of a line or the text', () => {
    expect(offsetOf(text, 1, 99)).toBe(9);
    expect(offsetOf(text, 7, 1)).toBe(text.length);
    expect(offsetOf(text, 1, 0)).toBe(0);
  });
  it('underlines the word at the error, or the character before the end', () => {
    expect(errorRange(text, 22)).toEqual({ from: 22, to: 28 });
    expect(errorRange('SELECT "my col" x', 7)).toEqual({ from: 7, to: 15 });
    expect(errorRange('SELECT (', 7)).toEqual({ from: 7, to: 8 });
    expect(errorRange('SELECT ', 7)).toEqual({ from: 6, to: 7 });
  });
  it('drops the location the console already shows', () => {
    expect(stripLocationPrefix('statement 2 (line 2): No field named nope.')).toBe('No field named nope.');
    expect(stripLocationPrefix('Expected: an SQL statement')).toBe('Expected: an SQL statement');
  });
});

describe('oneLine', () => {
  it('drops leading comments and collapses whitespace', () => {
    expect(oneLine('-- hello\n/* there */\n  SELECT 1,\n   2 -- two')).toBe('SELECT 1, 2 -- two');
    expect(oneLine('-- only a comment')).toBe('');
  });
});
