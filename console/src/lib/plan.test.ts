import { describe, expect, it } from 'vitest';
import { layers, splitLabel } from './plan';

const node = (id: number, label = `Op: ${id}`) => ({ id, kind: 'project', label });

describe('plan layout', () => {
  it('puts a chain in one column, top to bottom', () => {
    const l = layers([node(2), node(0), node(1)], [{ from: 0, to: 1 }, { from: 1, to: 2 }]);
    expect(l.map((row) => row.map((n) => n.id))).toEqual([[0], [1], [2]]);
  });
  it('places a join below both inputs', () => {
    const l = layers([node(0), node(1), node(2), node(3)], [{ from: 0, to: 2 }, { from: 1, to: 2 }, { from: 2, to: 3 }]);
    expect(l.map((row) => row.map((n) => n.id))).toEqual([[0, 1], [2], [3]]);
  });
  it('survives unknown ids and cycles', () => {
    const l = layers([node(0), node(1)], [{ from: 0, to: 1 }, { from: 1, to: 0 }, { from: 7, to: 0 }]);
    expect(l.flat().map((n) => n.id).sort()).toEqual([0, 1]);
  });
  it('splits labels into a heading and details', () => {
    expect(splitLabel({ id: 0, kind: 'source', label: 'Source: clicks (2 partitions), reads page, ts' })).toEqual({
      heading: 'Source',
      detail: 'clicks (2 partitions), reads page, ts',
    });
    expect(splitLabel({ id: 0, kind: 'sink', label: 'materialized view v' })).toEqual({ heading: 'Sink', detail: 'materialized view v' });
  });
});
