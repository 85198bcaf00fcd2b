// Timestamps as Weir writes them in JSON (ISO 8601 without a zone, meaning UTC, with up to
// nanosecond fractions): parsing to epoch milliseconds and short, readable forms.

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/;

/** Epoch milliseconds of a timestamp string (no zone = UTC) or a number of epoch ms; null if neither. */
export function parseTimestamp(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value !== 'string') return null;
  const m = ISO.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) + Number((frac + '000').slice(0, 3));
  if (frac.length > 3) ms += Number('0.' + frac.slice(3));
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return ms;
}

/** `2024-01-01T10:00:05.250` → `2024-01-01 10:00:05.25`; other values unchanged. */
export function formatTimestamp(value: string): string {
  return value.replace('T', ' ').replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** The time of day of a timestamp (`10:00:05`, with a fraction when it has one). */
export function timeOfDay(value: string): string {
  const full = formatTimestamp(value);
  const space = full.indexOf(' ');
  return space < 0 ? full : full.slice(space + 1);
}

/** The date part of a timestamp (`2024-01-01`). */
export function datePart(value: string): string {
  return value.slice(0, 10);
}

/** A window as `10:00:00–10:00:10`, or with dates when it spans days. */
export function formatRange(start: string, end: string): string {
  if (datePart(start) === datePart(end)) return `${timeOfDay(start)}–${timeOfDay(end)}`;
  return `${formatTimestamp(start)} – ${formatTimestamp(end)}`;
}

/** A span of milliseconds in words: `250 ms`, `5 s`, `2 min 5 s`, `3 h 10 min`, `2 days`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)} ms`;
  const s = abs / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
  const min = Math.floor(s / 60);
  if (min < 60) {
    const rest = Math.round(s - min * 60);
    return rest ? `${min} min ${rest} s` : `${min} min`;
  }
  const h = Math.floor(min / 60);
  if (h < 48) {
    const rest = min - h * 60;
    return rest ? `${h} h ${rest} min` : `${h} h`;
  }
  return `${Math.round(h / 24)} days`;
}
