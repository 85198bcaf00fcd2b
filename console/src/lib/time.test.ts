import { describe, expect, it } from 'vitest';
import { formatDuration, formatRange, formatTimestamp, parseTimestamp } from './time';

describe('time', () => {
  it('parses Weir timestamps as UTC, fractions and zones included', () => {
    expect(parseTimestamp('2024-01-01T00:00:10')).toBe(Date.UTC(2024, 0, 1, 0, 0, 10));
    expect(parseTimestamp('2024-01-01 00:00:10.250')).toBe(Date.UTC(2024, 0, 1, 0, 0, 10, 250));
    expect(parseTimestamp('2026-11-25T11:54:45.988424919')).toBeCloseTo(Date.UTC(2026, 10, 25, 11, 54, 45, 988) + 0.424919, 3);
    expect(parseTimestamp('2024-01-01T01:00:00+01:00')).toBe(Date.UTC(2024, 0, 1));
    expect(parseTimestamp('2024-01-01')).toBe(Date.UTC(2024, 0, 1));
    expect(parseTimestamp('soon')).toBeNull();
    expect(parseTimestamp(null)).toBeNull();
  });
  it('formats briefly', () => {
    expect(formatTimestamp('2024-01-01T10:00:05.250')).toBe('2024-01-01 10:00:05.25');
    expect(formatTimestamp('2024-01-01T10:00:05.000')).toBe('2024-01-01 10:00:05');
    expect(formatRange('2024-01-01T10:00:00', '2024-01-01T10:00:10')).toBe('10:00:00–10:00:10');
    expect(formatRange('2024-01-01T23:59:50', '2024-01-02T00:00:00')).toBe('2024-01-01 23:59:50 – 2024-01-02 00:00:00');
    expect(formatDuration(250)).toBe('250 ms');
    expect(formatDuration(5000)).toBe('5 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3600_000 + 600_000)).toBe('3 h 10 min');
  });
});
