import { describe, expect, it } from 'vitest';
import { applyBatch, emptyLive } from './resultset';

describe('applyBatch', () => {
  it('appends rows without ops', () => {
    let s = emptyLive();
    s = applyBatch(s, [['a', 1], ['b', 2]]);
    s = applyBatch(s, [['c', 3]]);
    expect(s.rows).toEqual([['a', 1], ['b', 2], ['c', 3]]);
    expect(s.inserted).toBe(3);
  });

  it('applies a retraction to an earlier equal row', () => {
    let s = applyBatch(emptyLive(), [['/home', 1], ['/cart', 1]], ['+', '+']);
    s = applyBatch(s, [['/home', 1], ['/home', 2]], ['-', '+']);
    expect(s.rows).toEqual([['/cart', 1], ['/home', 2]]);
    expect(s.retracted).toBe(1);
  });

  it('removes one row of several equal ones, the latest', () => {
    let s = applyBatch(emptyLive(), [['x'], ['y'], ['x']]);
    s = applyBatch(s, [['x']], ['-']);
    expect(s.rows).toEqual([['x'], ['y']]);
  });

  it('compares whole rows, nulls and nested values included', () => {
    let s = applyBatch(emptyLive(), [[null, { a: 1 }], [null, { a: 2 }]]);
    s = applyBatch(s, [[null, { a: 2 }]], ['-']);
    expect(s.rows).toEqual([[null, { a: 1 }]]);
  });

  it('counts retractions of rows it does not hold', () => {
    const s = applyBatch(emptyLive(), [['ghost']], ['-']);
    expect(s.rows).toEqual([]);
    expect(s.unmatched).toBe(1);
  });

  it('keeps at most the limit, dropping the oldest', () => {
    const s = applyBatch(emptyLive(), [[1], [2], [3], [4]], undefined, 3);
    expect(s.rows).toEqual([[2], [3], [4]]);
    expect(s.dropped).toBe(1);
  });

  it('returns a new object so a UI re-renders', () => {
    const a = emptyLive();
    expect(applyBatch(a, [[1]])).not.toBe(a);
  });
});
