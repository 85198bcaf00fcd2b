//! Weir: a streaming SQL database. Modules in data-flow order: configuration and time;
//! rows coming in (ingest decoding, generator connectors); where they are kept (log,
//! streams, catalog); how SQL reaches them (sql, table); continuous queries (planner,
//! operators, runtime); the engine that ties these together; and the listeners in front
//! (the HTTP API, the Postgres and Kafka protocols) with what guards them (auth, net,
//! limits), and the benchmark last.

/// The HTTP API.
pub mod api;
/// Tokens and roles, console sessions and SCRAM: who may do what, on every listener.
pub mod auth;
/// `weir bench`: throughput against the batch ceiling, state per group, RSS.
pub mod bench;
/// Persisted definitions of streams, views and continuous queries.
pub mod catalog;
/// Injectable wall clock (tests use a manual one).
pub mod clock;
/// Typed configuration, defaulted in one place.
pub mod config;
/// Connector options and formats: the generators (Nexmark, datagen) and Kafka's.
pub mod connector;
/// Runs statements and writes.
pub mod engine;
/// Connectors to Kafka and PostgreSQL at run time: the Kafka source and the sinks.
pub mod external;
/// Request bodies (NDJSON, JSON, CSV, Arrow IPC) to Arrow batches, with precise errors.
pub mod ingest;
/// The Kafka protocol listener (`--kafka-listen`).
pub mod kafka;
/// The limits that keep one statement or client from taking the server down.
pub mod limits;
/// Append-only partition logs of Arrow batches on disk.
pub mod log;
/// What every listener shares: TLS and connection caps.
pub mod net;
/// The stateful operators of continuous queries, one per file, and the stateless steps.
pub mod operators;
/// The PostgreSQL wire protocol listener (psql, drivers, BI tools).
pub mod pg;
/// LogicalPlan -> the graph of nodes a continuous query runs as.
pub mod planner;
/// Runs continuous query graphs: readers, operator instances, checkpoints, sinks.
pub mod runtime;
/// The Weir SQL dialect: wrapper parser and rewrites.
pub mod sql;
/// A stream: its partitions and the routing of rows to them.
pub mod stream;
/// Streams as DataFusion tables (scan and insert).
pub mod table;
/// Weir's SQL type names for Arrow types.
pub mod types;
