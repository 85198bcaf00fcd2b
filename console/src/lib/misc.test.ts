import { describe, expect, it } from 'vitest';
import { href, parseRoute, slugFor } from './route';
import { addHistory, loadHistory } from './history';
import { exampleNdjson } from './sample';
import { formatBytes, formatCell, formatRate, RateMeter } from './format';

describe('routes', () => {
  it('parses every page', () => {
    expect(parseRoute('')).toEqual({ page: 'workspace' });
    expect(parseRoute('#/')).toEqual({ page: 'workspace' });
    expect(parseRoute('#/streams')).toEqual({ page: 'streams' });
    expect(parseRoute('#/streams/clicks')).toEqual({ page: 'stream', name: 'clicks' });
    expect(parseRoute('#/queries/per_page')).toEqual({ page: 'query', id: 'per_page' });
    expect(parseRoute('#/dashboards/')).toEqual({ page: 'dashboards' });
    expect(parseRoute('#/dashboards/ops-1')).toEqual({ page: 'dashboard', id: 'ops-1' });
    expect(parseRoute('#/nope')).toEqual({ page: 'not-found', path: '/nope' });
  });
  it('round-trips names through links', () => {
    expect(parseRoute(href.stream('a b/c'))).toEqual({ page: 'stream', name: 'a b/c' });
  });
  it('makes unique slugs', () => {
    expect(slugFor('Clicks overview!', [])).toBe('clicks-overview');
    expect(slugFor('Clicks overview', ['clicks-overview', 'clicks-overview-2'])).toBe('clicks-overview-3');
    expect(slugFor('¿¿', [])).toBe('dashboard');
  });
});

describe('history', () => {
  it('keeps runs newest first without duplicates', () => {
    const store = new Map<string, string>();
    const storage = {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
    };
    let h = loadHistory(storage);
    h = addHistory(h, { sql: 'SELECT 1', at: 1, ok: true }, storage);
    h = addHistory(h, { sql: 'SELECT 2', at: 2, ok: false }, storage);
    h = addHistory(h, { sql: 'SELECT 1', at: 3, ok: true }, storage);
    expect(h.map((e) => e.sql)).toEqual(['SELECT 1', 'SELECT 2']);
    expect(loadHistory(storage)).toEqual(h);
    store.set('weir.history', 'not json');
    expect(loadHistory(storage)).toEqual([]);
  });
});

describe('sample rows and formats', () => {
  it('builds an example row from a schema', () => {
    const cols = [
      { name: 'page', type: 'TEXT' },
      { name: 'n', type: 'BIGINT' },
      { name: 'ts', type: 'TIMESTAMP' },
    ];
    expect(exampleNdjson(cols, new Date(Date.UTC(2024, 0, 1, 10)))).toBe('{"page":"/home","n":1,"ts":"2024-01-01T10:00:00"}');
  });
  it('formats sizes, rates and cells', () => {
    expect(formatBytes(296)).toBe('296 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatRate(undefined)).toBe('—');
    expect(formatRate(2.25)).toBe('2.3/s');
    expect(formatCell(null)).toBe('NULL');
    expect(formatCell('2024-01-01T00:00:10', 'TIMESTAMP')).toBe('2024-01-01 00:00:10');
    expect(formatCell(0.1 + 0.2)).toBe('0.3');
  });
  it('measures rates between samples', () => {
    const m = new RateMeter();
    expect(m.sample('s', 10, 1000)).toBeUndefined();
    expect(m.sample('s', 30, 3000)).toBe(10);
  });
});
