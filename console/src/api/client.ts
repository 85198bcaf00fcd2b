// The console's only way to the server: one function per route of the public HTTP API
// (HTTP.md, /v1/openapi.json). Errors come back as ApiError carrying the server's error
// JSON (code, message, position, statement, row, column_name).

import type {
  Dashboard,
  ErrorBody,
  IngestResult,
  Query,
  Records,
  Sink,
  SqlResult,
  Stream,
  View,
} from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }

  get code(): string {
    return this.body.code;
  }
}

/** Turns a failed response into an ApiError, whatever its body. */
export async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const json = JSON.parse(text);
    if (json && typeof json.error === 'object') return new ApiError(response.status, json.error);
  } catch {
    // Not JSON: fall through to the status text.
  }
  return new ApiError(response.status, {
    code: `http_${response.status}`,
    message: text.trim() || `${response.status} ${response.statusText}`,
  });
}

/** GET /v1/auth/me: whether the server requires a token, and who this session is. */
export interface Me {
  auth_required: boolean;
  authenticated: boolean;
  name?: string;
  role?: 'read' | 'write' | 'admin';
}

/** Dispatched on window when a request answers 401 (the session ended). */
export const UNAUTHORIZED_EVENT = 'weir:unauthorized';

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: { Accept: 'application/json', ...init.headers } });
  } catch (e) {
    if (init.signal?.aborted) throw e;
    throw new ApiError(0, { code: 'unreachable', message: 'Cannot reach the Weir server. Is it running?' });
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: error.message }));
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

const json = (body: unknown): RequestInit => ({
  body: JSON.stringify(body),
  headers: { 'Content-Type': 'application/json' },
});
const enc = encodeURIComponent;

export const api = {
  /** Ends the console session (its cookie). */
  logout: () => request<unknown>('/v1/auth/logout', { method: 'POST' }),

  /** Runs one or more `;`-separated statements. */
  sql: (sql: string, signal?: AbortSignal) =>
    request<SqlResult>('/v1/sql', { method: 'POST', ...json({ sql }), signal }),

  streams: () => request<{ streams?: Stream[] }>('/v1/streams').then((r) => r.streams ?? []),
  stream: (name: string) => request<Stream>(`/v1/streams/${enc(name)}`),
  records: (name: string, partition: number, offset: number, limit = 100) =>
    request<Records>(`/v1/streams/${enc(name)}/records?partition=${partition}&offset=${offset}&limit=${limit}`),
  /** Ingests NDJSON; all-or-nothing. */
  ingest: (name: string, ndjson: string) =>
    request<IngestResult>(`/v1/streams/${enc(name)}/records`, {
      method: 'POST',
      body: ndjson,
      headers: { 'Content-Type': 'application/x-ndjson' },
    }),

  queries: () => request<{ queries?: Query[] }>('/v1/queries').then((r) => r.queries ?? []),
  query: (id: string) => request<Query>(`/v1/queries/${enc(id)}`),
  stopQuery: (id: string) => request<unknown>(`/v1/queries/${enc(id)}`, { method: 'DELETE' }),

  views: () => request<{ views?: View[] }>('/v1/views').then((r) => r.views ?? []),
  view: (name: string) => request<View>(`/v1/views/${enc(name)}`),

  sinks: () => request<{ sinks: Sink[] }>('/v1/sinks').then((r) => r.sinks),

  dashboards: () => request<{ dashboards: Dashboard[] }>('/v1/dashboards').then((r) => r.dashboards),
  dashboard: (id: string) => request<Dashboard>(`/v1/dashboards/${enc(id)}`),
  saveDashboard: (id: string, dashboard: Dashboard) =>
    request<Dashboard>(`/v1/dashboards/${enc(id)}`, { method: 'PUT', ...json(dashboard) }),
  deleteDashboard: (id: string) => request<unknown>(`/v1/dashboards/${enc(id)}`, { method: 'DELETE' }),
};

/** A message for any thrown value. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
