import { describe, expect, it } from 'vitest';
import { explainNoOutput } from './whynooutput';
import type { Query } from '../api/types';

const base: Query = {
  id: 'per_window',
  name: 'per_window',
  kind: 'stream',
  source: 'clicks',
  status: 'running',
  rows_in: 10,
  rows_out: 0,
  late_rows: 0,
  watermark: '2024-01-01T10:00:05',
  progress: [
    { partition: 0, processed_offset: 6, committed_offset: 6, lag: 0, watermark: '2024-01-01T10:00:08', idle: false },
    { partition: 1, processed_offset: 4, committed_offset: 4, lag: 0, watermark: '2024-01-01T10:00:05', idle: false },
    { partition: 2, processed_offset: 0, committed_offset: 0, lag: 0, watermark: null, idle: false },
  ],
  open_windows: [{ window_start: '2024-01-01T10:00:00', window_end: '2024-01-01T10:00:10', groups: 3 }],
};

describe('explainNoOutput', () => {
  it('says which window waits for what, and which partition holds the watermark', () => {
    const e = explainNoOutput(base, { delayMs: 1000 });
    expect(e.headline).toBe(
      'Waiting for the watermark (now 2024-01-01 10:00:05) to reach 10:00:10, when the earliest open window closes.',
    );
    expect(e.points).toContain(
      'Window 10:00:00–10:00:10 (3 groups) closes when the watermark reaches 10:00:10, 5 s of event time from now.',
    );
    expect(e.points).toContain(
      'The watermark trails the largest event time by 1 s, so every partition that is not idle needs a row with event time at or after 10:00:11 to close it.',
    );
    expect(e.points).toContain('Partition 1 holds the watermark at 10:00:05; partition 0 is at 10:00:08.');
    expect(e.points).toContain('Partition 2 is empty: it holds the watermark back until it has been idle.');
  });

  it('flags idle partitions and lag', () => {
    const q: Query = {
      ...base,
      progress: [
        { partition: 0, committed_offset: 9, processed_offset: 5, lag: 4, watermark: '2024-01-01T10:00:05', idle: false },
        { partition: 2, committed_offset: 3, processed_offset: 3, lag: 0, watermark: '2024-01-01T09:59:58', idle: true },
      ],
    };
    const e = explainNoOutput(q, { idleTimeoutMs: 5000 });
    expect(e.points).toContain('Partition 0 has 4 rows the query has not processed yet.');
    expect(e.points).toContain('Partition 0 sets the watermark at 10:00:05.');
    expect(e.points).toContain(
      'Partition 2 is idle (no new rows for 5 s), so it does not hold the watermark back (its own is at 09:59:58).',
    );
  });

  it('explains a missing watermark, an idle source and late rows', () => {
    const q: Query = {
      ...base,
      watermark: null,
      late_rows: 2,
      progress: [{ partition: 0, committed_offset: 3, processed_offset: 3, lag: 0, watermark: null, idle: true }],
    };
    const e = explainNoOutput(q);
    expect(e.headline).toMatch(/^There is no watermark yet, so no window can close/);
    expect(e.points).toContain('Every partition is idle, so the watermark holds until new rows arrive.');
    expect(e.points).toContain('2 rows arrived after their window had closed and were dropped as late.');
  });

  it('handles queries without windows, without input, and stopped ones', () => {
    expect(explainNoOutput({ ...base, open_windows: undefined, plan: { nodes: [{ id: 0, kind: 'filter', label: 'Filter: x > 1' }], edges: [] } }).headline)
      .toBe('This query has no windows: each row comes out as soon as it is processed.');
    expect(explainNoOutput({ ...base, rows_in: 0, progress: [] }).headline).toBe('No rows have arrived in clicks yet.');
    expect(explainNoOutput({ ...base, status: 'failed' }).headline).toBe('The query is failed, so it produces nothing new.');
    expect(explainNoOutput({ ...base, open_windows: [], rows_out: 4 }).headline).toBe(
      'No window is open: every window so far has closed and been emitted.',
    );
  });

  it('tells a view reader where the open windows already are', () => {
    const e = explainNoOutput({ ...base, kind: 'materialized_view', name: 'per_page' });
    expect(e.points.at(-1)).toBe(
      "A materialized view shows every window's current value right away, open or closed: SELECT * FROM per_page reads it.",
    );
  });

  it('lists at most five windows', () => {
    const open_windows = Array.from({ length: 8 }, (_, i) => ({
      window_start: `2024-01-01T10:00:${String(i * 5).padStart(2, '0')}`,
      window_end: `2024-01-01T10:00:${String(i * 5 + 5).padStart(2, '0')}`,
    }));
    const e = explainNoOutput({ ...base, open_windows });
    expect(e.points.filter((p) => p.startsWith('Window '))).toHaveLength(5);
    expect(e.points).toContain('…and 3 more windows.');
  });
});

describe('explainNoOutput against an older server', () => {
  it('says nothing about partition watermarks it was not told', () => {
    const q: Query = {
      ...base,
      open_windows: undefined,
      plan: { nodes: [{ id: 3, kind: 'aggregate', label: 'Aggregate: group by [window_start], window: window_end' }], edges: [] },
      progress: [{ partition: 0, processed_offset: 5, committed_offset: 5, lag: 0 }],
    };
    const e = explainNoOutput(q);
    expect(e.headline).toBe('A window closes when the watermark (now 2024-01-01 10:00:05) reaches its end.');
    expect(e.points).toEqual([]);
  });
});

describe('open windows without their start', () => {
  it('speaks of the window by its end, as the server reports it', () => {
    const e = explainNoOutput({ ...base, open_windows: [{ window_end: '2024-01-01T10:00:10', groups: 2 }] });
    expect(e.points[0]).toBe(
      'The window ending at 10:00:10 (2 groups) closes when the watermark reaches its end, 5 s of event time from now.',
    );
  });
});
