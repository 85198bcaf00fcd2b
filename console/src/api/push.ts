// Push queries: GET /v1/sql/stream read as Server-Sent Events. fetch() rather than
// EventSource, because a query the server refuses answers 400 with the error JSON (which
// EventSource hides), and because EventSource would reconnect and rerun the query on its
// own. Stopping is aborting the request; the server then drops the query.

import { createParser } from 'eventsource-parser';
import { ApiError, errorFrom } from './client';
import type { ReadyEvent, RowsEvent, WatermarkEvent } from './types';

export interface PushHandlers {
  onReady?(event: ReadyEvent): void;
  onRows?(event: RowsEvent): void;
  onWatermark?(event: WatermarkEvent): void;
  /** The query failed (refused, or an `error` event); the stream is over. */
  onError?(error: ApiError): void;
  /** The server ended the stream without an error. */
  onEnd?(): void;
}

/** Starts a push query; returns a function that stops it. */
export function pushQuery(sql: string, handlers: PushHandlers): () => void {
  const controller = new AbortController();
  void run(sql, handlers, controller.signal);
  return () => controller.abort();
}

async function run(sql: string, h: PushHandlers, signal: AbortSignal): Promise<void> {
  let failed = false;
  const fail = (e: ApiError) => {
    if (!failed && !signal.aborted) h.onError?.(e);
    failed = true;
  };
  try {
    const response = await fetch(`/v1/sql/stream?sql=${encodeURIComponent(sql)}`, {
      headers: { Accept: 'text/event-stream' },
      signal,
    });
    if (!response.ok || !response.body) {
      fail(await errorFrom(response));
      return;
    }
    const parser = createParser({
      onEvent(event) {
        if (signal.aborted || failed) return;
        let data: unknown;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        switch (event.event) {
          case 'ready':
            h.onReady?.(data as ReadyEvent);
            break;
          case 'rows':
            h.onRows?.(data as RowsEvent);
            break;
          case 'watermark':
            h.onWatermark?.(data as WatermarkEvent);
            break;
          case 'error': {
            const body = (data as { error?: { code: string; message: string } }).error ?? (data as { code: string; message: string });
            fail(new ApiError(200, { code: body.code ?? 'error', message: body.message ?? String(event.data) }));
            break;
          }
        }
      },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
    if (!failed && !signal.aborted) h.onEnd?.();
  } catch (e) {
    if (signal.aborted) return;
    fail(new ApiError(0, { code: 'disconnected', message: `The push query was disconnected: ${e instanceof Error ? e.message : e}` }));
  }
}
