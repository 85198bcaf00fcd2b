import { describe, expect, it } from 'vitest';
import { buildChartData, chooseSeries, columnKind, pickNumber, toNumber, xStep, yRange } from './chart';

const perPage = [
  { name: 'window_start', type: 'TIMESTAMP' },
  { name: 'window_end', type: 'TIMESTAMP' },
  { name: 'page', type: 'TEXT' },
  { name: 'n', type: 'BIGINT' },
];

describe('columnKind', () => {
  it('sorts Weir type names', () => {
    expect(columnKind('TIMESTAMP')).toBe('time');
    expect(columnKind('DATE')).toBe('time');
    expect(columnKind('BIGINT')).toBe('number');
    expect(columnKind('INT UNSIGNED')).toBe('number');
    expect(columnKind('DECIMAL(10,2)')).toBe('number');
    expect(columnKind('REAL')).toBe('number');
    expect(columnKind('TEXT')).toBe('text');
    expect(columnKind('BIGINT[]')).toBe('other');
    expect(columnKind('INTERVAL')).toBe('other');
  });
});

describe('chooseSeries', () => {
  it('takes the first timestamp as x and numbers as series', () => {
    const cols = [
      { name: 'window_start', type: 'TIMESTAMP' },
      { name: 'window_end', type: 'TIMESTAMP' },
      { name: 'n', type: 'BIGINT' },
      { name: 'avg', type: 'DOUBLE' },
    ];
    expect(chooseSeries(cols)).toEqual({ x: 0, ys: [2, 3], group: null });
  });

  it('splits one number by a text column', () => {
    expect(chooseSeries(perPage)).toEqual({ x: 0, ys: [3], group: 2 });
    expect(chooseSeries(perPage, { group: '' })).toEqual({ x: 0, ys: [3], group: null });
  });

  it('follows the options when they name columns', () => {
    expect(chooseSeries(perPage, { x: 'window_end', y: 'n', group: 'page' })).toEqual({ x: 1, ys: [3], group: 2 });
    expect(chooseSeries(perPage, { y: ['N'] }).ys).toEqual([3]);
    expect(chooseSeries(perPage, { x: 'missing' }).x).toBe(0);
  });

  it('has no x without a timestamp', () => {
    expect(chooseSeries([{ name: 'page', type: 'TEXT' }, { name: 'n', type: 'BIGINT' }])).toEqual({ x: null, ys: [1], group: null });
  });
});

describe('buildChartData', () => {
  it('pivots groups into series aligned on sorted x', () => {
    const rows = [
      ['2024-01-01T00:00:10', '2024-01-01T00:00:20', '/home', 1],
      ['2024-01-01T00:00:00', '2024-01-01T00:00:10', '/home', 2],
      ['2024-01-01T00:00:00', '2024-01-01T00:00:10', '/cart', 1],
    ];
    const data = buildChartData(perPage, rows, chooseSeries(perPage));
    const t0 = Date.UTC(2024, 0, 1) / 1000;
    expect(data.xs).toEqual([t0, t0 + 10]);
    expect(data.time).toBe(true);
    expect(data.series).toEqual([
      { label: '/home', values: [2, 1] },
      { label: '/cart', values: [1, null] },
    ]);
  });

  it('sums rows that share an x, and skips rows without one', () => {
    const cols = [{ name: 't', type: 'TIMESTAMP' }, { name: 'v', type: 'DECIMAL(5,1)' }];
    const rows = [['2024-01-01T00:00:00', '1.5'], ['2024-01-01T00:00:00', 2], [null, 9]];
    const data = buildChartData(cols, rows, chooseSeries(cols));
    expect(data.series).toEqual([{ label: 'v', values: [3.5] }]);
  });

  it('uses row numbers without a time column', () => {
    const cols = [{ name: 'n', type: 'BIGINT' }];
    const data = buildChartData(cols, [[5], [7]], chooseSeries(cols));
    expect(data).toEqual({ xs: [0, 1], time: false, series: [{ label: 'n', values: [5, 7] }] });
  });
});

describe('pickNumber', () => {
  it('takes the latest row by time', () => {
    const rows = [
      ['2024-01-01T00:00:10', '2024-01-01T00:00:20', '/home', 4],
      ['2024-01-01T00:00:00', '2024-01-01T00:00:10', '/home', 2],
    ];
    expect(pickNumber(perPage, rows)).toEqual({ value: 4, label: 'n' });
    expect(pickNumber(perPage, [])).toBeNull();
  });
  it('reads toNumber like a chart does', () => {
    expect(toNumber('2.50')).toBe(2.5);
    expect(toNumber('abc')).toBeNull();
    expect(toNumber(true)).toBe(1);
  });
});

describe('ranges', () => {
  it('starts positive values at 0 with headroom', () => {
    expect(yRange(3, 4)).toEqual([0, 4.32]);
    expect(yRange(0, 0)).toEqual([0, 0.08]);
    expect(yRange(null, null)).toEqual([0, 1]);
    const [lo, hi] = yRange(-2, 2);
    expect(lo).toBeLessThan(-2);
    expect(hi).toBeGreaterThan(2);
  });
  it('finds the bar width', () => {
    expect(xStep([0, 10, 30, 40])).toBe(10);
    expect(xStep([5])).toBe(1);
  });
});
