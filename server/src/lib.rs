//! Weir: a streaming SQL database. Modules in data-flow order: configuration and time,
//! then rows coming in (ingest decoding), where they are kept (log, streams, catalog),
//! how SQL reaches them (sql, table), the engine that ties these together, and the HTTP
//! API in front.

/// The HTTP API.
pub mod api;
/// `weir bench`: throughput against the batch ceiling, state per group, RSS.
pub mod bench;
/// Persisted definitions of streams.
pub mod catalog;
/// Injectable wall clock (tests use a manual one).
pub mod clock;
/// Typed configuration, defaulted in one place.
pub mod config;
/// Generator streams (Nexmark, datagen): rows from options.
pub mod connector;
/// Runs statements and writes.
pub mod engine;
/// Request bodies (NDJSON, JSON, CSV, Arrow IPC) to Arrow batches, with precise errors.
pub mod ingest;
/// Append-only partition logs of Arrow batches on disk.
pub mod log;
/// The PostgreSQL wire protocol listener (psql, drivers, BI tools).
pub mod pg;
/// LogicalPlan -> streaming plan for continuous queries.
pub mod planner;
/// Runs continuous queries: sources, steps, sinks, progress.
pub mod runtime;
/// The Weir SQL dialect: wrapper parser and rewrites.
pub mod sql;
/// A stream: its partitions and the routing of rows to them.
pub mod stream;
/// Streams as DataFusion tables (scan and insert).
pub mod table;
/// Weir's SQL type names for Arrow types.
pub mod types;
