// "Why no output yet?": a continuous query's watermarks, partitions and open windows
// explained in plain words. Pure: takes what GET /v1/queries/{id} (and the source
// stream's watermark settings) say and returns sentences.

import type { Query } from '../api/types';
import { formatDuration, formatRange, formatTimestamp, parseTimestamp, timeOfDay } from './time';

export interface SourceInfo {
  /** How far the watermark trails the largest event time (the WATERMARK delay). */
  delayMs?: number;
  /** How long a caught-up partition waits before it counts as idle. */
  idleTimeoutMs?: number;
}

export interface Explanation {
  /** One sentence: the main reason, or that nothing is waiting. */
  headline: string;
  /** Further facts, one sentence each, most useful first. */
  points: string[];
}

const MAX_WINDOWS = 5;

/** Shows a timestamp briefly when it falls on the same day as `ref`. */
function at(ts: string, ref: string | null | undefined): string {
  return ref && ts.slice(0, 10) === ref.slice(0, 10) ? timeOfDay(ts) : formatTimestamp(ts);
}

function plural(n: number, one: string, many = one + 's'): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** Whether the plan has a windowed aggregate (for servers that do not list open windows). */
export function isWindowed(q: Query): boolean {
  if (q.open_windows && q.open_windows.length > 0) return true;
  return (q.plan?.nodes ?? []).some((n) => /window/i.test(n.label ?? '') && /aggregate/i.test(n.kind ?? n.label ?? ''));
}

export function explainNoOutput(q: Query, source: SourceInfo = {}): Explanation {
  const points: string[] = [];
  const wm = q.watermark ?? null;
  const progress = q.progress ?? [];
  const windows = q.open_windows;
  const isView = q.kind === 'materialized_view';
  const totalCommitted = progress.reduce((sum, p) => sum + (p.committed_offset ?? 0), 0);

  // Partitions, as they bear on the watermark.
  const active = progress.filter((p) => !p.idle && p.watermark);
  const idle = progress.filter((p) => p.idle);
  let holder: (typeof progress)[number] | undefined;
  for (const p of active) {
    if (!holder || (parseTimestamp(p.watermark) ?? 0) < (parseTimestamp(holder.watermark) ?? 0)) holder = p;
  }
  const partitionPoints: string[] = [];
  const manyStreams = new Set(progress.map((p) => p.stream)).size > 1;
  for (const p of progress) {
    const name = manyStreams ? `Partition ${p.partition} of ${p.stream}` : `Partition ${p.partition}`;
    if ((p.lag ?? 0) > 0) {
      partitionPoints.push(`${name} has ${plural(p.lag!, 'row')} the query has not processed yet.`);
    }
    // An older server reports offsets only; then there is nothing to say about watermarks.
    const reportsWatermark = p.watermark !== undefined || p.idle !== undefined;
    if (!reportsWatermark) continue;
    if (p.idle) {
      const wait = source.idleTimeoutMs ? ` for ${formatDuration(source.idleTimeoutMs)}` : '';
      partitionPoints.push(
        `${name} is idle (no new rows${wait}), so it does not hold the watermark back` +
          (p.watermark ? ` (its own is at ${at(p.watermark, wm)}).` : '.'),
      );
    } else if (!p.watermark) {
      partitionPoints.push(
        (p.committed_offset ?? 0) === 0
          ? `${name} is empty: it holds the watermark back until it has been idle` +
              (source.idleTimeoutMs ? ` for ${formatDuration(source.idleTimeoutMs)}.` : '.')
          : `${name} has no watermark yet.`,
      );
    } else if (p === holder && active.length > 1) {
      const ahead = active
        .filter((o) => o !== p && o.watermark !== p.watermark)
        .map((o) => `${manyStreams ? `partition ${o.partition} of ${o.stream}` : `partition ${o.partition}`} is at ${at(o.watermark!, wm)}`);
      partitionPoints.push(
        `${name} holds the watermark at ${at(p.watermark, wm)}` + (ahead.length ? `; ${ahead.join(', ')}.` : '.'),
      );
    } else if (active.length === 1) {
      partitionPoints.push(`${name} sets the watermark at ${at(p.watermark, wm)}.`);
    }
  }

  // The headline and the windows.
  let headline: string;
  if (q.status && q.status !== 'running') {
    headline = `The query is ${q.status}, so it produces nothing new.`;
  } else if ((q.rows_in ?? 0) === 0 && totalCommitted === 0) {
    headline = `No rows have arrived in ${q.source ?? 'its input'} yet.`;
  } else if (windows === undefined && !isWindowed(q)) {
    headline = 'This query has no windows: each row comes out as soon as it is processed.';
    if ((q.lag ?? 0) > 0) points.push(`It is ${plural(q.lag!, 'row')} behind its input.`);
  } else if (windows === undefined) {
    headline = wm
      ? `A window closes when the watermark (now ${formatTimestamp(wm)}) reaches its end.`
      : 'There is no watermark yet, so no window can close.';
  } else if (windows.length === 0) {
    headline = (q.rows_out ?? 0) > 0
      ? 'No window is open: every window so far has closed and been emitted.'
      : 'No window is open yet.';
  } else {
    const first = windows[0];
    headline = wm
      ? `Waiting for the watermark (now ${formatTimestamp(wm)}) to reach ${at(first.window_end, wm)}, ` +
        `when the earliest open window closes.`
      : 'There is no watermark yet, so no window can close: the watermark starts when every active partition has delivered a row.';
    for (const w of windows.slice(0, MAX_WINDOWS)) {
      const groups = w.groups !== undefined ? ` (${plural(w.groups, 'group')})` : '';
      let sentence = w.window_start
        ? `Window ${formatRange(w.window_start, w.window_end)}${groups} closes when the watermark reaches ${at(w.window_end, wm)}`
        : `The window ending at ${at(w.window_end, wm)}${groups} closes when the watermark reaches its end`;
      const end = parseTimestamp(w.window_end);
      const now = parseTimestamp(wm);
      if (end !== null && now !== null && end > now) sentence += `, ${formatDuration(end - now)} of event time from now`;
      points.push(sentence + '.');
    }
    if (windows.length > MAX_WINDOWS) points.push(`…and ${plural(windows.length - MAX_WINDOWS, 'more window')}.`);
    if (source.delayMs !== undefined) {
      const end = parseTimestamp(first.window_end);
      if (end !== null) {
        const needed = new Date(end + source.delayMs).toISOString().slice(0, 23).replace(/\.000$/, '');
        points.push(
          `The watermark trails the largest event time by ${formatDuration(source.delayMs)}, so every ` +
            `partition that is not idle needs a row with event time at or after ${at(needed, wm)} to close it.`,
        );
      }
    }
  }
  points.push(...partitionPoints);
  if (progress.length > 0 && idle.length === progress.length && progress.length > 0) {
    points.push(`Every partition is idle, so the watermark holds${wm ? ` at ${at(wm, wm)}` : ''} until new rows arrive.`);
  }
  if (isView && (windows?.length || isWindowed(q))) {
    points.push(
      `A materialized view shows every window's current value right away, open or closed: SELECT * FROM ${q.name ?? q.id} reads it.`,
    );
  }
  if ((q.late_rows ?? 0) > 0) {
    points.push(`${plural(q.late_rows!, 'row')} arrived after their window had closed and ${q.late_rows === 1 ? 'was' : 'were'} dropped as late.`);
  }
  return { headline, points };
}
