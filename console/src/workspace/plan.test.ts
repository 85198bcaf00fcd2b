import { describe, expect, it } from 'vitest';
import { planRun } from './plan';

describe('planRun', () => {
  it('posts ordinary statements together, as written', () => {
    const p = planRun('SELECT 1;\nSELECT 2;');
    expect(p.batch).toBe('SELECT 1;\nSELECT 2');
    expect(p.batchStatements.map((s) => s.sql)).toEqual(['SELECT 1', 'SELECT 2']);
    expect(p.push).toBeNull();
  });

  it('runs a final push query over the stream endpoint after the rest', () => {
    const p = planRun("INSERT INTO t VALUES (1);\nSELECT * FROM t EMIT CHANGES;");
    expect(p.batch).toBe('INSERT INTO t VALUES (1)');
    expect(p.push?.sql).toBe('SELECT * FROM t EMIT CHANGES');
  });

  it('runs a lone push query without a POST', () => {
    const p = planRun('SELECT * FROM t EMIT FINAL');
    expect(p.batch).toBeNull();
    expect(p.push?.from).toBe(0);
  });

  it('refuses a push query before other statements', () => {
    const p = planRun('SELECT * FROM t EMIT CHANGES; SELECT 1');
    expect(p.problem).toMatch(/must be the last statement/);
  });
});
