//! The engine runs statements and writes: it owns the catalog, the live streams and the
//! DataFusion session, and ties the SQL layer to the logs. Knows nothing about HTTP.
//!
//! Concurrency: DDL is serialised by the catalog mutex; reads and writes of rows never
//! take it (they find streams in the registry, a read-mostly map).

mod continuous;
mod dashboards;
mod ddl;
mod error;
mod generators;
mod pg_catalog;
mod prepared;
mod push;
mod show;
mod sinks;
mod window_inputs;

pub use error::{Error, Result, datafusion_message};
pub use pg_catalog::{PG_SETTINGS, SERVER_VERSION, pg_setting, version_text};
pub use prepared::Described;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::catalog::QueryKind;
use crate::clock::Clock;
use crate::runtime::RunningQuery;
use crate::sql::{
    CreateStream, ParsedStatement, WeirStatement, hide_metadata_columns, name_insert_columns,
    parse_sql,
};
use crate::stream::{PartitionWrite, Stream};
use crate::table::{StreamRegistry, StreamSchemaProvider, ViewRegistry};

/// What the engine needs to know; the server's config fills it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Size at which a partition's active segment is sealed and a new one started.
    pub segment_bytes: u64,
    /// How often retention runs over every stream.
    pub retention_interval: Duration,
    /// How often continuous queries checkpoint (and so publish their results).
    pub checkpoint_interval: Duration,
    /// Where checkpoints go: `None` for `{data_dir}/checkpoints`, or `s3://bucket/prefix`.
    pub storage: Option<String>,
    /// A ready checkpoint store, overriding `storage` (tests inject faults with it).
    pub checkpoint_store: Option<crate::runtime::checkpoint::CheckpointStore>,
    /// Statement timeout, query memory, result and SQL sizes, ...
    pub limits: crate::limits::Limits,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            segment_bytes: 64 << 20,
            retention_interval: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(1),
            storage: None,
            checkpoint_store: None,
            limits: Default::default(),
        }
    }
}

/// The result of one statement.
#[derive(Debug, Clone)]
pub enum StatementResult {
    /// DDL and DML: a message and, for writes, how many rows.
    Ok {
        message: String,
        rows_affected: Option<u64>,
    },
    /// A query's rows.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        elapsed: Duration,
    },
}

/// A statement of a multi-statement text that failed, with the results before it.
#[derive(Debug)]
pub struct StatementError {
    /// 1-based index of the failed statement, and where it starts in the text.
    pub index: usize,
    pub line: u64,
    pub column: u64,
    pub error: Error,
    pub completed: Vec<StatementResult>,
}

impl StatementError {
    /// A text that does not parse: the error is at its position, before any statement ran.
    fn parse(e: crate::sql::ParseError) -> StatementError {
        StatementError {
            index: 1,
            line: e.position.map_or(1, |p| p.0),
            column: e.position.map_or(1, |p| p.1),
            error: Error::Parse {
                message: e.message,
                position: e.position,
            },
            completed: Vec::new(),
        }
    }
}

/// The result of an ingest request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestResult {
    pub accepted: u64,
    pub partitions: Vec<PartitionWrite>,
}

pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    /// Serialises DDL; holds the persisted definitions.
    catalog: tokio::sync::Mutex<Catalog>,
    streams: StreamRegistry,
    views: ViewRegistry,
    /// The lifted inputs of window functions in statements being planned.
    relations: crate::planner::Relations,
    /// Running continuous queries by the name of what they write.
    queries: parking_lot::Mutex<std::collections::BTreeMap<String, Arc<RunningQuery>>>,
    /// Push queries, while their subscribers hold them (counted against
    /// `--max-continuous-queries`).
    push_queries: parking_lot::Mutex<Vec<std::sync::Weak<RunningQuery>>>,
    session: SessionContext,
    retention_task: tokio::task::JoinHandle<()>,
    /// Copies the catalog to the checkpoint storage when it changes.
    mirror_task: tokio::task::JoinHandle<()>,
    /// Where continuous queries keep their checkpoints.
    checkpoints: crate::runtime::checkpoint::CheckpointStore,
    /// How long start-up recovery took (streams and queries), in milliseconds.
    pub recovery_ms: std::sync::atomic::AtomicU64,
    /// Generator streams' tasks, by stream name.
    generators: parking_lot::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Kafka sources' threads, by stream name.
    sources: parking_lot::Mutex<
        std::collections::HashMap<String, crate::external::kafka_source::KafkaSource>,
    >,
    /// Running sinks, by name.
    sinks: parking_lot::Mutex<std::collections::HashMap<String, crate::external::SinkHandle>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.retention_task.abort();
        self.mirror_task.abort();
        for task in self.generators.lock().values() {
            task.abort();
        }
        // Query tasks hold their query alive; stop them so nothing writes after close.
        for query in self.queries.lock().values() {
            query.stop();
        }
    }
}

impl Engine {
    /// Opens the data dir: loads the catalog and recovers every stream's logs.
    pub async fn open(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Arc<Engine>> {
        let started = Instant::now();
        std::fs::create_dir_all(config.data_dir.join("streams")).map_err(|e| {
            Error::Invalid(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let checkpoints = match (&config.checkpoint_store, &config.storage) {
            (Some(store), _) => Ok(store.clone()),
            (None, storage) => match storage {
                Some(url) if url.starts_with("s3://") => {
                    crate::runtime::checkpoint::CheckpointStore::s3(url)
                }
                Some(path) => crate::runtime::checkpoint::CheckpointStore::local(
                    std::path::Path::new(path.strip_prefix("file://").unwrap_or(path)),
                ),
                None => crate::runtime::checkpoint::CheckpointStore::local(
                    &config.data_dir.join("checkpoints"),
                ),
            },
        }
        .map_err(Error::Invalid)?;
        // A data dir without its catalog (a new disk) takes the durable copy, if the
        // storage holds one: the definitions of streams, queries and dashboards.
        let catalog_path = config.data_dir.join("catalog.json");
        if !catalog_path.exists()
            && let Some(bytes) = checkpoints.get_catalog().await.map_err(Error::Invalid)?
        {
            tracing::warn!(
                "no catalog.json in {}: restoring the durable copy from {}",
                config.data_dir.display(),
                checkpoints.location
            );
            std::fs::write(&catalog_path, bytes).map_err(|e| {
                Error::Invalid(format!("cannot write {}: {e}", catalog_path.display()))
            })?;
        }
        let catalog = Catalog::load(&config.data_dir)?;
        let streams = StreamRegistry::default();
        let defs: Vec<_> = catalog.streams().cloned().collect();
        for def in defs {
            let stream = ddl::open_stream(&config, def, clock.clone()).await?;
            streams.write().insert(stream.name().to_string(), stream);
        }
        ddl::remove_orphan_dirs(&config.data_dir, &catalog);

        let mut session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("weir", "public");
        // TEXT columns are stored as plain Utf8: the log format, ingest decoders and
        // Parquet exports all speak it, and DataFusion reads it at full speed.
        session_config
            .options_mut()
            .sql_parser
            .map_string_types_to_utf8view = false;
        let session = SessionContext::new_with_config(session_config);
        let weir = MemoryCatalogProvider::new();
        let views = ViewRegistry::default();
        weir.register_schema(
            "public",
            Arc::new(StreamSchemaProvider::new(streams.clone(), views.clone())),
        )?;
        session.register_catalog("weir", Arc::new(weir));
        // pg_catalog and the functions Postgres clients call when they connect.
        pg_catalog::register(&session)?;
        // Table function names are matched as written; accept both usual spellings.
        let relations = crate::planner::Relations::default();
        let tumble = Arc::new(crate::planner::TumbleFunction::new(
            streams.clone(),
            relations.clone(),
        ));
        session.register_udtf("tumble", tumble.clone());
        session.register_udtf("TUMBLE", tumble);
        let hop = Arc::new(crate::planner::HopFunction::new(
            streams.clone(),
            relations.clone(),
        ));
        session.register_udtf("hop", hop.clone());
        session.register_udtf("HOP", hop);
        session.register_udf(crate::planner::temporal::as_of_udf());
        let sessions = Arc::new(crate::planner::SessionFunction::new(streams.clone()));
        session.register_udtf("session", sessions.clone());
        session.register_udtf("SESSION", sessions);

        let retention_task = tokio::spawn(ddl::retention_loop(
            streams.clone(),
            config.retention_interval,
        ));
        let mirror_task = tokio::spawn(mirror_catalog(catalog_path.clone(), checkpoints.clone()));
        let n = streams.read().len();
        tracing::info!(
            streams = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered data dir {}",
            config.data_dir.display()
        );
        let engine = Arc::new(Engine {
            config,
            clock,
            catalog: tokio::sync::Mutex::new(catalog),
            streams,
            views,
            relations,
            queries: Default::default(),
            push_queries: Default::default(),
            session,
            retention_task,
            mirror_task,
            checkpoints,
            recovery_ms: Default::default(),
            generators: Default::default(),
            sources: Default::default(),
            sinks: Default::default(),
        });
        engine.start_catalog_queries().await;
        let recovery_ms = started.elapsed().as_millis() as u64;
        engine
            .recovery_ms
            .store(recovery_ms, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            recovery_ms,
            queries = engine.queries().len(),
            "recovered continuous queries from their checkpoints ({})",
            engine.checkpoints.location
        );
        for stream in engine.streams() {
            engine.start_generator(&stream);
            engine.start_source(&stream);
        }
        engine.start_catalog_sinks().await;
        Ok(engine)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    pub fn view(&self, name: &str) -> Option<Arc<crate::runtime::ViewState>> {
        self.views.read().get(name).cloned()
    }

    pub fn view_names(&self) -> Vec<String> {
        self.views.read().keys().cloned().collect()
    }

    /// Starts the generator of a stream created `WITH (connector = ...)`, if it has one.
    fn start_generator(&self, stream: &Arc<Stream>) {
        match generators::spec_of(&stream.def) {
            Ok(Some(spec)) => {
                let task = tokio::spawn(generators::run(stream.clone(), Arc::new(spec)));
                if let Some(old) = self
                    .generators
                    .lock()
                    .insert(stream.name().to_string(), task)
                {
                    old.abort();
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(stream = stream.name(), "cannot start its generator: {e}"),
        }
    }

    /// Starts the Kafka source of a stream created `WITH (connector = 'kafka')`, if it is one.
    fn start_source(&self, stream: &Arc<Stream>) {
        use crate::connector::kafka::{KafkaSourceSpec, OnError, is_source};
        if !is_source(&stream.def.options) {
            return;
        }
        let spec = match KafkaSourceSpec::from_options(&stream.def.options, &stream.def.schema) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!(stream = stream.name(), "cannot start its Kafka source: {e}");
                return;
            }
        };
        let dead_letters = match &spec.errors {
            OnError::DeadLetter(name) => self.stream(name),
            OnError::Stop => None,
        };
        let source = crate::external::kafka_source::start(stream.clone(), spec, dead_letters);
        if let Some(old) = self
            .sources
            .lock()
            .insert(stream.name().to_string(), source)
        {
            old.stop();
        }
    }

    /// The state of a Kafka source stream's reader (`None` for other streams).
    pub fn source_status(
        &self,
        stream: &str,
    ) -> Option<crate::external::kafka_source::SourceStatus> {
        self.sources.lock().get(stream).map(|s| s.status())
    }

    fn stop_source(&self, name: &str) {
        let source = self.sources.lock().remove(name);
        if let Some(source) = source {
            source.stop();
        }
    }

    /// FLUSH: a bounded generator without a rate (a benchmark or test input) counts as
    /// input written so far, so FLUSH waits for it to finish.
    async fn wait_for_unpaced_generators(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let pending: Vec<String> = {
                let tasks = self.generators.lock();
                self.streams()
                    .iter()
                    .filter(|s| tasks.get(s.name()).is_some_and(|t| !t.is_finished()))
                    .filter(|s| {
                        generators::spec_of(&s.def)
                            .ok()
                            .flatten()
                            .is_some_and(|g| g.rate().is_none() && g.max_events().is_some())
                    })
                    .map(|s| s.name().to_string())
                    .collect()
            };
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Invalid(format!(
                    "FLUSH timed out waiting for generator stream(s) {}",
                    pending.join(", ")
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn stop_generator(&self, name: &str) {
        if let Some(task) = self.generators.lock().remove(name) {
            task.abort();
        }
    }

    /// Stops every continuous query between steps and waits for them: after this,
    /// nothing the engine started writes (call before closing the data dir).
    pub async fn shutdown(&self) {
        for (_, task) in self.generators.lock().drain() {
            task.abort();
        }
        self.sinks.lock().clear();
        let sources: Vec<_> = self.sources.lock().drain().map(|(_, s)| s).collect();
        let _ =
            tokio::task::spawn_blocking(move || sources.into_iter().for_each(|s| s.stop())).await;
        // A last checkpoint, so a restart has little to replay.
        for query in self.queries() {
            match tokio::time::timeout(Duration::from_secs(10), query.checkpoint_now()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(query = %query.def.name, "no final checkpoint: {e}"),
                Err(_) => tracing::warn!(query = %query.def.name, "final checkpoint timed out"),
            }
        }
        for query in self.queries() {
            query.shutdown().await;
        }
    }

    /// The running continuous queries, oldest first.
    pub fn queries(&self) -> Vec<Arc<RunningQuery>> {
        let mut all: Vec<_> = self.queries.lock().values().cloned().collect();
        all.sort_by_key(|q| q.def.id);
        all
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().values().cloned().collect()
    }

    /// Runs `;`-separated statements in order, stopping at the first error, for a caller
    /// who may do everything (embedding, tests, the benchmark).
    pub async fn execute_sql(&self, sql: &str) -> Result<Vec<StatementResult>, StatementError> {
        self.execute_sql_as(sql, &Principal::anonymous()).await
    }

    /// Refuses one more continuous query (view, derived stream or push query) when
    /// `--max-continuous-queries` are running.
    pub(crate) fn check_query_count(&self) -> Result<()> {
        let push = {
            let mut push = self.push_queries.lock();
            push.retain(|q| q.upgrade().is_some_and(|q| !q.has_failed()));
            push.len()
        };
        let running = self.queries.lock().len() + push;
        if running >= self.config.limits.max_continuous_queries {
            return Err(Error::Limit(format!(
                "{running} continuous queries are running (push queries included), the most \
                 --max-continuous-queries allows; drop one (SHOW QUERIES lists them) or raise \
                 the limit"
            )));
        }
        Ok(())
    }

    /// The server's limits.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.config.limits
    }

    /// Refuses a SQL text over `--max-sql-bytes` or nested deeper than `--max-sql-depth`;
    /// every path from outside checks this before parsing.
    pub fn check_sql_limits(&self, sql: &str) -> Result<()> {
        let limits = &self.config.limits;
        if sql.len() > limits.max_sql_bytes {
            return Err(Error::Limit(format!(
                "the SQL text has {} bytes, more than the {} --max-sql-bytes allows; send \
                 large data through ingest (POST /v1/streams/NAME/records) rather than INSERT, \
                 or raise --max-sql-bytes",
                sql.len(),
                crate::limits::format_bytes(limits.max_sql_bytes as u64)
            )));
        }
        let depth = crate::limits::nesting_depth(sql);
        if depth > limits.max_sql_depth {
            return Err(Error::Limit(format!(
                "the SQL text nests expressions {depth} deep (brackets and chained operators), \
                 more than the {} --max-sql-depth allows; flatten it (e.g. IN (...) instead \
                 of a chain of ORs), or raise --max-sql-depth",
                limits.max_sql_depth
            )));
        }
        Ok(())
    }

    /// Parses a SQL text after checking its size and nesting against the limits.
    pub(crate) fn parse_checked(&self, sql: &str) -> Result<Vec<ParsedStatement>, StatementError> {
        self.check_sql_limits(sql).map_err(|error| StatementError {
            index: 1,
            line: 1,
            column: 1,
            error,
            completed: Vec::new(),
        })?;
        parse_sql(sql).map_err(StatementError::parse)
    }

    /// Runs `;`-separated statements in order for `principal`: every statement is checked
    /// against its role before the first one runs, so a refused text changes nothing.
    pub async fn execute_sql_as(
        &self,
        sql: &str,
        principal: &Principal,
    ) -> Result<Vec<StatementResult>, StatementError> {
        if crate::sql::strip_emit(sql).1.is_some() && is_select(sql) {
            return Err(StatementError {
                index: 1,
                line: 1,
                column: 1,
                error: Error::Invalid(
                    "SELECT ... EMIT is a push query: it never ends, so it streams its results as \
                     Server-Sent Events from GET /v1/sql/stream?sql=<the query, URL-encoded> \
                     (for example with curl -N)"
                        .into(),
                ),
                completed: Vec::new(),
            });
        }
        let statements = self.parse_checked(sql)?;
        authorize(&statements, principal)?;
        let mut results = Vec::with_capacity(statements.len());
        for ParsedStatement {
            statement,
            index,
            line,
            column,
        } in statements
        {
            match self.execute(statement).await {
                Ok(result) => results.push(result),
                Err(error) => {
                    return Err(StatementError {
                        index,
                        line,
                        column,
                        error,
                        completed: results,
                    });
                }
            }
        }
        Ok(results)
    }

    /// Runs one parsed statement.
    pub async fn execute(&self, statement: WeirStatement) -> Result<StatementResult> {
        match statement {
            WeirStatement::CreateStream(create) => self.create_stream(*create).await,
            WeirStatement::DropStream { name, if_exists } => self.drop_stream(&name, if_exists).await,
            WeirStatement::ShowStreams => Ok(show::show_streams(&self.streams())),
            WeirStatement::Describe { name } => {
                let stream = self.stream(&name).ok_or_else(|| unknown_stream_error(&name))?;
                Ok(show::describe(&stream))
            }
            WeirStatement::Flush => self.flush().await,
            WeirStatement::CreateMaterializedView { name, if_not_exists, options, query } => {
                self.create_continuous(name, QueryKind::MaterializedView, if_not_exists, &options, &query).await
            }
            WeirStatement::DropMaterializedView { name, if_exists } => self.drop_materialized_view(&name, if_exists).await,
            WeirStatement::ShowQueries => Ok(self.show_queries()),
            WeirStatement::CreateSink { name, if_not_exists, from, options } => {
                self.create_sink(name, if_not_exists, from, &options).await
            }
            WeirStatement::DropSink { name, if_exists } => self.drop_sink(&name, if_exists).await,
            WeirStatement::ShowSinks => Ok(self.show_sinks().await),
            WeirStatement::ShowMaterializedViews => Ok(self.show_materialized_views()),
            WeirStatement::ExplainContinuous(inner) => match *inner {
                WeirStatement::CreateStream(create) if create.query.is_some() => {
                    let CreateStream { name, query, options, .. } = *create;
                    let query = query.expect("checked above");
                    self.explain_continuous(format!("Sink: stream {name} (append)"), &query, false, &options).await
                }
                WeirStatement::CreateMaterializedView { name, query, options, .. } => {
                    self.explain_continuous(format!("Sink: materialized view {name}"), &query, true, &options).await
                }
                _ => Err(Error::Invalid("EXPLAIN CREATE STREAM needs AS SELECT ...: only continuous queries have a streaming plan".into())),
            },
            WeirStatement::DataFusion(statement) => self.run_datafusion(*statement, None).await,
        }
    }

    /// Plans a DataFusion statement after Weir's rewrites (hidden metadata columns,
    /// window spellings, INSERT column names), refusing what Weir does not run.
    async fn plan_datafusion(&self, mut statement: DFStatement) -> Result<LogicalPlan> {
        let _lifted = self.lift_window_inputs(&mut statement, true).await?;
        // EXPLAIN SELECT ...: the query it explains gets the same rewrites.
        let target = match &mut statement {
            DFStatement::Explain(explain) => explain.statement.as_mut(),
            other => other,
        };
        if let DFStatement::Statement(inner) = target {
            self.rewrite_query(inner)?;
            let streams = self.streams.read();
            name_insert_columns(inner, &|name| {
                streams
                    .get(name)
                    .map(|s| s.schema.fields().iter().map(|f| f.name().clone()).collect())
            });
        }
        let state = self.session.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(Error::from_datafusion)?;
        let plan =
            crate::planner::temporal::expand_bounded(plan).map_err(Error::from_datafusion)?;
        check_supported(&plan)?;
        Ok(plan)
    }

    /// Weir's rewrites of a query before DataFusion plans it, bounded or continuous:
    /// hidden metadata columns, window spellings, session keys, temporal joins.
    pub(super) fn rewrite_query(&self, inner: &mut Statement) -> Result<()> {
        let streams = self.streams.read();
        hide_metadata_columns(inner, &|name| streams.contains_key(name));
        crate::sql::rewrite_window_functions(inner);
        crate::sql::rewrite_group_windows(inner);
        crate::sql::session_keys(inner);
        crate::sql::temporal::mark_temporal_joins(inner, &|name| {
            streams
                .get(name)
                .and_then(|s| s.def.watermark.as_ref().map(|w| w.column.clone()))
        })
        .map_err(Error::Invalid)
    }

    /// Plans and runs a DataFusion statement within `--statement-timeout`.
    async fn run_datafusion(
        &self,
        statement: DFStatement,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<StatementResult> {
        let run = self.run_datafusion_unbounded(statement, params);
        match self.config.limits.statement_timeout {
            None => run.await,
            Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                Err(Error::Timeout(format!(
                    "canceling statement due to statement timeout: it ran longer than the {} \
                     --statement-timeout allows; narrow the query, or raise the limit \
                     (--statement-timeout 0 for none)",
                    humantime_ms(limit.as_millis() as u64)
                )))
            }),
        }
    }

    async fn run_datafusion_unbounded(
        &self,
        statement: DFStatement,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<StatementResult> {
        let started = Instant::now();
        let mut plan = self.plan_datafusion(statement).await?;
        if let Some(params) = params {
            plan = plan
                .with_param_values(params)
                .map_err(Error::from_datafusion)?;
        }
        let is_insert =
            matches!(&plan, LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)));
        let frame = match &plan {
            // Session statements (SET, CREATE VIEW, ...) change the shared session.
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => self
                .session
                .execute_logical_plan(plan)
                .await
                .map_err(Error::from_datafusion)?,
            // A query gets its own memory pool of --query-memory bytes.
            _ => datafusion::dataframe::DataFrame::new(self.query_state()?, plan),
        };
        let schema = frame.schema().as_arrow().clone();
        let batches = self.collect_limited(frame).await?;
        if is_insert {
            let rows: u64 = batches
                .iter()
                .filter_map(|b| b.column(0).as_primitive_opt::<UInt64Type>())
                .map(|c| c.values().iter().sum::<u64>())
                .sum();
            return Ok(StatementResult::Ok {
                message: format!("INSERT {rows}"),
                rows_affected: Some(rows),
            });
        }
        Ok(StatementResult::Rows {
            schema: Arc::new(schema),
            batches,
            elapsed: started.elapsed(),
        })
    }

    /// The session state a bounded query runs with: the shared catalog and functions,
    /// and a memory pool of its own, `--query-memory` bytes, that sorts, joins and
    /// aggregates spill or fail against.
    fn query_state(&self) -> Result<datafusion::execution::SessionState> {
        use datafusion::execution::memory_pool::FairSpillPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(
                self.config.limits.query_memory_bytes,
            )))
            .build_arc()
            .map_err(Error::from_datafusion)?;
        Ok(
            datafusion::execution::SessionStateBuilder::new_from_existing(self.session.state())
                .with_runtime_env(runtime)
                .build(),
        )
    }

    /// Collects a query's batches, refusing results over `--max-result-rows` or
    /// `--max-result-bytes` as soon as they are, before more is held.
    async fn collect_limited(
        &self,
        frame: datafusion::dataframe::DataFrame,
    ) -> Result<Vec<RecordBatch>> {
        use futures::StreamExt;
        let limits = &self.config.limits;
        // Every operator yields to the runtime now and then, so that a query that
        // computes for long (a cross join feeding an aggregate never waits for input)
        // still lets the statement timeout fire and a client that left cancel it.
        let task = frame.task_ctx();
        let physical = frame
            .create_physical_plan()
            .await
            .map_err(Error::from_datafusion)?;
        let physical = cooperative_everywhere(physical).map_err(Error::from_datafusion)?;
        let mut stream = datafusion::physical_plan::execute_stream(physical, Arc::new(task))
            .map_err(Error::from_datafusion)?;
        let (mut batches, mut rows, mut bytes) = (Vec::new(), 0usize, 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(Error::from_datafusion)?;
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            if rows > limits.max_result_rows {
                return Err(Error::Limit(format!(
                    "the result has more than {} rows, the most --max-result-rows allows in one \
                     answer; add a LIMIT or an aggregate, page with OFFSET, or raise \
                     --max-result-rows",
                    limits.max_result_rows
                )));
            }
            if bytes > limits.max_result_bytes {
                return Err(Error::Limit(format!(
                    "the result is larger than {}, the most --max-result-bytes allows in one \
                     answer; select fewer columns, add a LIMIT, or raise --max-result-bytes",
                    crate::limits::format_bytes(limits.max_result_bytes as u64)
                )));
            }
            batches.push(batch);
        }
        Ok(batches)
    }

    /// Appends a decoded request body to a stream; returns once it is durable.
    pub async fn ingest(&self, stream: &str, batch: RecordBatch) -> Result<IngestResult> {
        let stream = self
            .stream(stream)
            .ok_or_else(|| unknown_stream_error(stream))?;
        if let Some(refusal) = stream.refuses_writes() {
            return Err(Error::Invalid(refusal));
        }
        let accepted = batch.num_rows() as u64;
        let partitions = tokio::task::spawn_blocking(move || stream.append(&batch))
            .await
            .map_err(|e| Error::Internal(format!("ingest task failed: {e}")))??;
        Ok(IngestResult {
            accepted,
            partitions,
        })
    }
}

/// Wraps every operator of a physical plan in DataFusion's `CooperativeExec`, which
/// takes from tokio's task budget per batch and yields when it is spent.
fn cooperative_everywhere(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::coop::CooperativeExec;
    plan.transform_up(|node| {
        if node.children().is_empty() || node.is::<CooperativeExec>() {
            Ok(Transformed::no(node))
        } else {
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))))
        }
    })
    .map(|t| t.data)
}

/// `300000` → `5m`, `1500` → `1500ms`.
fn humantime_ms(ms: u64) -> String {
    match ms {
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Refuses the whole text when one of its statements needs more than the caller's role.
pub(crate) fn authorize(
    statements: &[ParsedStatement],
    principal: &Principal,
) -> Result<(), StatementError> {
    for parsed in statements {
        let (needed, action) = parsed.statement.required_role();
        if let Err(denied) = principal.require(needed, action) {
            return Err(StatementError {
                index: parsed.index,
                line: parsed.line,
                column: parsed.column,
                error: Error::Forbidden(denied.to_string()),
                completed: Vec::new(),
            });
        }
    }
    Ok(())
}

/// Whether the (last) statement of `sql` is a query rather than a CREATE ... AS.
fn is_select(sql: &str) -> bool {
    let last = sql
        .trim()
        .trim_end_matches(';')
        .rsplit(';')
        .next()
        .unwrap_or("")
        .trim_start()
        .to_ascii_uppercase();
    last.starts_with("SELECT") || last.starts_with("WITH") || last.starts_with('(')
}

/// Keeps the durable copy of the catalog in the checkpoint storage up to date (checked
/// every second; the local file is the one the engine reads).
async fn mirror_catalog(path: PathBuf, store: crate::runtime::checkpoint::CheckpointStore) {
    let mut last: Option<Vec<u8>> = None;
    loop {
        if let Ok(bytes) = tokio::fs::read(&path).await
            && last.as_ref() != Some(&bytes)
        {
            match store.put_catalog(bytes.clone()).await {
                Ok(()) => last = Some(bytes),
                Err(e) => tracing::warn!("could not copy the catalog to {}: {e}", store.location),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub fn unknown_stream_error(name: &str) -> Error {
    Error::NotFound(format!(
        "unknown stream \"{name}\"; SHOW STREAMS lists the streams that exist"
    ))
}

/// Refuses DataFusion statements that make no sense on streams, with what to do instead.
fn check_supported(plan: &LogicalPlan) -> Result<()> {
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_) | DdlStatement::CreateExternalTable(_)) => Err(
            Error::Invalid("Weir stores data in streams: use CREATE STREAM name (columns...) instead of CREATE TABLE".into()),
        ),
        LogicalPlan::Ddl(DdlStatement::CreateView(_)) => Err(Error::Invalid(
            "CREATE VIEW is not supported; materialized views (CREATE MATERIALIZED VIEW) come with continuous queries".into(),
        )),
        LogicalPlan::Ddl(_) => Err(Error::Invalid(format!(
            "{} is not supported by Weir; see SHOW STREAMS, CREATE STREAM and DROP STREAM",
            plan.display()
        ))),
        LogicalPlan::Dml(dml) if !matches!(dml.op, WriteOp::Insert(_)) => Err(Error::Invalid(format!(
            "streams are append-only logs: {} is not supported; write new rows with INSERT instead",
            dml.op
        ))),
        LogicalPlan::Copy(_) => Err(Error::Invalid("COPY is not supported; ingest over HTTP or with INSERT".into())),
        _ => Ok(()),
    }
}
