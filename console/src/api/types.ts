// The API's types for the console: aliases of the generated OpenAPI types (schema.d.ts,
// `npm run gen-types`), plus hand-written shapes where the document is vague (free-form
// objects) or behind the server (fields of GET /v1/queries/{id} being added). Everything
// added here is optional, so the console renders against an older server too.

import type { components } from './schema';

type Schemas = components['schemas'];

export type Column = Schemas['Column'];
export type SqlResult = Schemas['SqlResult'];
export type Stream = Schemas['Stream'];
export type Partition = Schemas['Partition'];
export type IngestResult = Schemas['IngestResult'];
export type View = Schemas['View'];
export type Panel = Schemas['Panel'];
export type Dashboard = Schemas['Dashboard'];
export type Sink = Schemas['Sink'];
export type KafkaSource = Schemas['KafkaSource'];
export type ErrorBody = Schemas['Error']['error'];

/** One record of GET /v1/streams/{name}/records; `value` is the row as a JSON object. */
export type StreamRecord = Omit<NonNullable<Schemas['Records']['records']>[number], 'value'> & {
  value?: Record<string, unknown>;
};
export type Records = Omit<Schemas['Records'], 'records'> & { records?: StreamRecord[] };

type GenQuery = Schemas['Query'];
type GenNode = NonNullable<NonNullable<GenQuery['plan']>['nodes']>[number];
type GenEdge = NonNullable<NonNullable<GenQuery['plan']>['edges']>[number];
type GenProgress = NonNullable<GenQuery['progress']>[number];
type GenWindow = NonNullable<GenQuery['open_windows']>[number];

// The document marks no field of a query as required; the server always sends these,
// and the console relies on them.

/** A node of a query's plan graph, with per-operator figures. */
export type PlanNode = GenNode & { id: number; kind: string; label: string };
export type PlanEdge = GenEdge & { from: number; to: number };
/** Progress of one source partition: offsets, its watermark and whether it is idle. */
export type PartitionProgress = GenProgress & { partition: number };
/**
 * A window the query holds open (earliest end first). HTTP.md's target shape also names
 * `window_start`; the server sends only the end today, so the console reads it if present.
 */
export type OpenWindow = GenWindow & { window_end: string; window_start?: string };

/** GET /v1/queries/{id} (and the entries of GET /v1/queries, without plan, progress and windows). */
export type Query = Omit<GenQuery, 'plan' | 'progress' | 'open_windows'> & {
  plan?: { nodes?: PlanNode[]; edges?: PlanEdge[] };
  progress?: PartitionProgress[];
  open_windows?: OpenWindow[];
};

/** Events of a push query (GET /v1/sql/stream). */
export interface ReadyEvent {
  columns: Column[];
  query?: string;
}
export interface RowsEvent {
  columns?: Column[];
  rows: unknown[][];
  ops?: string[];
}
export interface WatermarkEvent {
  watermark: string | null;
}
