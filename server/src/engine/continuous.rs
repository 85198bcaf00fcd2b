//! Continuous queries in the engine: `CREATE STREAM ... AS SELECT`, `CREATE MATERIALIZED
//! VIEW`, their DROP, `SHOW QUERIES`, `SHOW MATERIALIZED VIEWS`, `EXPLAIN CREATE ...`,
//! `FLUSH`, and restarting the catalog's queries at start-up.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Query, SqlOption, Statement};

use super::{Engine, Error, Result, StatementResult, ddl};
use crate::catalog::{QueryDef, QueryKind, StreamDef};
use crate::planner::{ContinuousPlan, StatefulKind, plan_continuous};
use crate::runtime::{RunningQuery, Sink, ViewState};
use crate::sql::StreamOptions;
use crate::stream::METADATA_COLUMNS;

/// How long FLUSH waits for the queries to catch up before giving up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine {
    /// Plans a continuous query's SELECT (it is not started).
    pub(super) async fn plan_select(&self, select: &str) -> Result<ContinuousPlan> {
        self.check_sql_limits(select)?;
        let statements = crate::sql::parse_sql(select).map_err(|e| Error::Parse {
            message: e.message,
            position: e.position,
        })?;
        let Some(crate::sql::WeirStatement::DataFusion(statement)) =
            statements.into_iter().next().map(|s| s.statement)
        else {
            return Err(Error::Invalid("a continuous query is one SELECT".into()));
        };
        self.plan_statement(*statement).await
    }

    async fn plan_statement(&self, mut statement: DFStatement) -> Result<ContinuousPlan> {
        if let DFStatement::Statement(inner) = &mut statement
            && let Statement::Query(query) = inner.as_mut()
        {
            self.inline_window_views(query);
        }
        let _lifted = self.lift_window_inputs(&mut statement, false).await?;
        if let DFStatement::Statement(inner) = &mut statement {
            self.rewrite_query(inner)?;
        }
        let state = self.session.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(Error::from_datafusion)?;
        let plan = state.optimize(&plan).map_err(Error::from_datafusion)?;
        let streams = self.streams.clone();
        plan_continuous(&state, &plan, &|name| streams.read().get(name).cloned())
            .map_err(Error::from_datafusion)
    }

    fn name_taken(&self, name: &str) -> bool {
        self.streams.read().contains_key(name) || self.views.read().contains_key(name)
    }

    /// `CREATE STREAM name WITH (...) AS SELECT` and `CREATE MATERIALIZED VIEW`.
    pub(super) async fn create_continuous(
        &self,
        name: String,
        kind: QueryKind,
        if_not_exists: bool,
        options: &[SqlOption],
        query: &Query,
    ) -> Result<StatementResult> {
        ddl::validate_name(&name)?;
        let mut catalog = self.catalog.lock().await;
        self.check_query_count()?;
        if self.name_taken(&name) {
            if if_not_exists {
                return Ok(ok(format!("{name} already exists")));
            }
            return Err(Error::AlreadyExists(format!(
                "\"{name}\" already exists; use IF NOT EXISTS, or drop it first"
            )));
        }
        // Views as window inputs become their definitions, in what is stored too.
        let mut query = query.clone();
        self.inline_window_views(&mut query);
        let query = &query;
        let plan = self
            .plan_statement(DFStatement::Statement(Box::new(Statement::Query(
                Box::new(query.clone()),
            ))))
            .await?;
        check_output_columns(&plan)?;
        let options = StreamOptions::parse(options).map_err(Error::Invalid)?;
        let emit_changes = emit_changes(&options, kind)?;
        check_runnable(&plan, kind, emit_changes)?;
        if kind == QueryKind::MaterializedView
            && (options.partitions.is_some()
                || !options.key.is_empty()
                || options.retention_bytes.is_some())
        {
            return Err(Error::Invalid(
                "a materialized view takes start, parallelism and retention (of closed windows); \
                 partitions, key and retention_bytes are for streams"
                    .into(),
            ));
        }
        let starts = start_offsets(&plan, &options)?.unwrap_or_default();
        let def = QueryDef {
            id: catalog.allocate_id(),
            name: name.clone(),
            kind,
            select: crate::sql::temporal::restore_system_time(&query.to_string()),
            source: plan.sources()[0].name().to_string(),
            inputs: match plan.sources().len() {
                1 => Vec::new(),
                _ => plan
                    .sources()
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect(),
            },
            created_at_ms: self.clock.now_ms(),
            start_offsets: starts.first().and_then(|(_, o)| o.clone()),
            input_start_offsets: starts
                .iter()
                .skip(1)
                .filter_map(|(s, o)| Some((s.clone(), o.clone()?)))
                .collect(),
            parallelism: parallelism(&options)?,
            retention_ms: match kind {
                QueryKind::MaterializedView => options.retention_ms,
                QueryKind::Stream => None,
            },
            late_data: options
                .other
                .iter()
                .find(|(k, _)| k == "late_data")
                .map(|(_, v)| v.to_ascii_lowercase()),
            emit_changes,
            dedup_retention_ms: options.dedup_retention_ms,
            state_ttl_ms: options.state_ttl_ms,
            state_limit_bytes: options.state_limit_bytes,
        };
        check_regular_joins(&plan, &def)?;
        if def.dedup_retention_ms.is_some() && !plan.deduplicates() {
            return Err(Error::Invalid(
                "dedup_retention is for deduplicating queries (ROW_NUMBER() OVER (PARTITION BY key \
                 ORDER BY ts) = 1); this query keeps no rows per key"
                    .into(),
            ));
        }
        if let Some(late) = &def.late_data {
            if plan.sources().len() > 1 {
                return Err(Error::Invalid(
                    "late_data routes late events as their source rows, so it takes a query over \
                     one stream; this one reads several (count late rows with SHOW QUERIES instead)"
                        .into(),
                ));
            }
            self.ensure_late_stream(&mut catalog, late, &plan).await?;
        }
        let output = match kind {
            QueryKind::Stream => Some(derived_stream_def(&def, &plan, options)?),
            QueryKind::MaterializedView => None,
        };
        catalog.put_query(def.clone(), output.clone())?;
        self.start_query(def, plan, output).await?;
        tracing::info!(name = %name, "started continuous query");
        Ok(ok(match kind {
            QueryKind::Stream => format!("created stream {name}"),
            QueryKind::MaterializedView => format!("created materialized view {name}"),
        }))
    }

    /// Starts a planned query (at creation and at start-up).
    async fn start_query(
        &self,
        def: QueryDef,
        plan: ContinuousPlan,
        output: Option<StreamDef>,
    ) -> Result<()> {
        let late = def
            .late_data
            .as_ref()
            .and_then(|n| self.stream(n))
            .map(|stream| {
                (
                    stream,
                    self.config
                        .data_dir
                        .join("queries")
                        .join(def.id.to_string())
                        .join("late"),
                )
            });
        let name = def.name.clone();
        // Recovery: the newest complete checkpoint, and output no checkpoint covers removed.
        let restored = self
            .checkpoints
            .latest(def.id)
            .await
            .map_err(|e| Error::Internal(format!("reading the checkpoints of {name}: {e}")))?;
        let start = crate::runtime::Start {
            store: Some(self.checkpoints.clone()),
            restored: restored.clone(),
            interval: self.config.checkpoint_interval,
        };
        if let Some(c) = &restored {
            tracing::info!(query = %name, epoch = c.epoch, sources = ?c.sources, "restoring from checkpoint");
        }
        let query = match output {
            Some(stream_def) => {
                let stream = match self.stream(&stream_def.name) {
                    Some(s) => s,
                    None => {
                        let s =
                            ddl::open_stream(&self.config, stream_def, self.clock.clone()).await?;
                        self.streams.write().insert(name.clone(), s.clone());
                        s
                    }
                };
                let ends = restored
                    .as_ref()
                    .map(|c| c.output_offsets.clone())
                    .filter(|o| o.len() == stream.partitions().len())
                    .unwrap_or_else(|| vec![0; stream.partitions().len()]);
                let s = stream.clone();
                let removed = tokio::task::spawn_blocking(move || s.rewind(&ends))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                if removed > 0 {
                    tracing::info!(query = %name, rows = removed, "removed output no checkpoint covers");
                }
                RunningQuery::start(def, plan, Sink::Stream(stream), start, self.clock.clone(), late)
            }
            None => {
                let view = Arc::new(ViewState::new(plan.output_schema.clone()));
                self.views.write().insert(name.clone(), view.clone());
                RunningQuery::start(def, plan, Sink::View(view), start, self.clock.clone(), late)
            }
        }
        .map_err(|e| Error::Internal(format!("starting query {name}: {e}")))?;
        // Restored state is visible before anyone can read the view.
        query
            .wait_restored()
            .await
            .map_err(|e| Error::Internal(format!("restoring query {name}: {e}")))?;
        let budget = query
            .def
            .state_limit_bytes
            .unwrap_or(self.config.limits.state_limit_bytes);
        tokio::spawn(watch_state(Arc::downgrade(&query), budget));
        self.queries.lock().insert(name, query);
        Ok(())
    }

    /// Starts every query of the catalog, in creation order (a query may read another's output).
    pub(super) async fn start_catalog_queries(&self) {
        let mut defs: Vec<QueryDef> = self.catalog.lock().await.queries().cloned().collect();
        defs.sort_by_key(|d| d.id);
        for def in defs {
            let output = self.catalog.lock().await.stream(&def.name).cloned();
            let started = match self.plan_select(&def.select).await {
                Ok(plan) => self.start_query(def.clone(), plan, output).await,
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                tracing::error!(query = %def.name, "cannot restart continuous query: {e}");
            }
        }
    }

    /// The queries reading `stream`, by name.
    pub(super) fn readers_of(&self, stream: &str) -> Vec<String> {
        self.queries
            .lock()
            .values()
            .filter(|q| q.def.reads(stream))
            .map(|q| q.def.name.clone())
            .collect()
    }

    /// Stops and forgets the query writing `name`; `with_stream` also drops its stream.
    pub(super) async fn drop_query(
        &self,
        catalog: &mut crate::catalog::Catalog,
        name: &str,
        with_stream: bool,
    ) -> Result<Option<QueryDef>> {
        let Some(def) = catalog.remove_query(name, with_stream)? else {
            return Ok(None);
        };
        if let Some(q) = self.queries.lock().remove(name) {
            q.stop();
        }
        self.views.write().remove(name);
        if let Err(e) = self.checkpoints.delete_query(def.id).await {
            tracing::warn!(query = name, "could not delete its checkpoints: {e}");
        }
        let dir = self
            .config
            .data_dir
            .join("queries")
            .join(def.id.to_string());
        let _ = std::fs::remove_dir_all(dir);
        Ok(Some(def))
    }

    /// Stops the continuous query writing `name` (`DELETE /v1/queries/{id}`): a view is
    /// dropped; a derived stream stays, with what it holds, as a plain stream.
    pub async fn stop_query(&self, name: &str) -> Result<QueryKind> {
        let mut catalog = self.catalog.lock().await;
        let def = catalog.query(name).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "unknown query \"{name}\"; GET /v1/queries lists them"
            ))
        })?;
        self.drop_query(&mut catalog, name, false).await?;
        if let Some(mut stream) = catalog.stream(name).cloned() {
            stream.query = None;
            catalog.put_stream(stream)?;
        }
        Ok(def.kind)
    }

    pub(super) async fn drop_materialized_view(
        &self,
        name: &str,
        if_exists: bool,
    ) -> Result<StatementResult> {
        let mut catalog = self.catalog.lock().await;
        if !self.views.read().contains_key(name) {
            if if_exists {
                return Ok(ok(format!("materialized view {name} does not exist")));
            }
            return Err(Error::NotFound(format!(
                "unknown materialized view \"{name}\"; SHOW MATERIALIZED VIEWS lists them"
            )));
        }
        let sinks = self.sinks_of(&catalog, name);
        if !sinks.is_empty() {
            return Err(Error::Invalid(format!(
                "materialized view {name} is written out by sink(s) {}; DROP SINK them first",
                sinks.join(", ")
            )));
        }
        self.drop_query(&mut catalog, name, false).await?;
        Ok(ok(format!("dropped materialized view {name}")))
    }

    /// FLUSH: returns once every query has processed every row that was committed in its
    /// input when FLUSH started. Queries are waited for in creation order, so a query
    /// reading another's output sees what that one wrote for this FLUSH.
    pub(super) async fn flush(&self) -> Result<StatementResult> {
        self.wait_for_unpaced_generators(FLUSH_TIMEOUT).await?;
        let mut queries: Vec<Arc<RunningQuery>> = self.queries.lock().values().cloned().collect();
        queries.sort_by_key(|q| q.def.id);
        for query in queries {
            let targets = query.committed_offsets();
            tokio::time::timeout(FLUSH_TIMEOUT, query.wait_for(&targets))
                .await
                .map_err(|_| {
                    Error::Invalid(format!(
                        "FLUSH timed out waiting for query {}",
                        query.def.name
                    ))
                })?
                .map_err(|e| Error::Invalid(e.to_string()))?;
            // Idleness depends on the clock alone: re-check it now.
            query.tick().await;
            // Results become visible at commits: take one now.
            query.checkpoint_now().await.map_err(|e| {
                Error::Invalid(format!(
                    "FLUSH could not checkpoint query {}: {e}",
                    query.def.name
                ))
            })?;
        }
        Ok(ok("FLUSH".into()))
    }

    pub(super) fn show_queries(&self) -> StatementResult {
        let mut queries: Vec<Arc<RunningQuery>> = self.queries.lock().values().cloned().collect();
        queries.sort_by_key(|q| q.def.id);
        let text = |f: &dyn Fn(&RunningQuery) -> String| -> ArrayRef {
            Arc::new(StringArray::from(
                queries.iter().map(|q| f(q)).collect::<Vec<_>>(),
            ))
        };
        let count = |f: &dyn Fn(&RunningQuery) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                queries.iter().map(|q| f(q) as i64),
            ))
        };
        let columns = vec![
            text(&|q| q.def.name.clone()),
            text(&|q| kind_name(q.def.kind).into()),
            text(&|q| q.def.inputs().join(", ")),
            text(&|q| q.status()),
            count(&|q| q.metrics.rows_in.load(std::sync::atomic::Ordering::Relaxed)),
            count(&|q| {
                q.metrics
                    .rows_out
                    .load(std::sync::atomic::Ordering::Relaxed)
            }),
            count(&|q| {
                q.metrics
                    .late_rows
                    .load(std::sync::atomic::Ordering::Relaxed)
            }),
            text(&|q| q.def.select.clone()),
        ];
        let fields = vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("rows_in", DataType::Int64, false),
            Field::new("rows_out", DataType::Int64, false),
            Field::new("late_rows", DataType::Int64, false),
            Field::new("sql", DataType::Utf8, false),
        ];
        super::show::rows(fields, columns)
    }

    pub(super) fn show_materialized_views(&self) -> StatementResult {
        let mut queries: Vec<Arc<RunningQuery>> = self
            .queries
            .lock()
            .values()
            .filter(|q| q.def.kind == QueryKind::MaterializedView)
            .cloned()
            .collect();
        queries.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        let views = self.views.read();
        let rows: Vec<i64> = queries
            .iter()
            .map(|q| views.get(&q.def.name).map_or(0, |v| v.rows() as i64))
            .collect();
        super::show::rows(
            vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("rows", DataType::Int64, false),
                Field::new("sql", DataType::Utf8, false),
            ],
            vec![
                Arc::new(StringArray::from(
                    queries
                        .iter()
                        .map(|q| q.def.name.clone())
                        .collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(rows)),
                Arc::new(StringArray::from(
                    queries
                        .iter()
                        .map(|q| q.def.select.clone())
                        .collect::<Vec<_>>(),
                )),
            ],
        )
    }

    /// EXPLAIN CREATE ...: the streaming plan, one operator per row, sink first.
    pub(super) async fn explain_continuous(
        &self,
        sink: String,
        query: &Query,
        is_view: bool,
        options: &[SqlOption],
    ) -> Result<StatementResult> {
        let plan = self
            .plan_statement(DFStatement::Statement(Box::new(Statement::Query(
                Box::new(query.clone()),
            ))))
            .await?;
        let options = StreamOptions::parse(options).map_err(Error::Invalid)?;
        let parallelism = parallelism(&options)?;
        let mut lines = vec![sink];
        lines.extend(plan.explain_lines().iter().map(|o| format!("  {o}")));
        for source in plan.sources() {
            let of = match plan.sources().len() {
                1 => String::new(),
                _ => format!(" of {}", source.name()),
            };
            lines.push(match &source.def.watermark {
                Some(w) => format!(
                    "  watermark{of}: {} - {} ms, min over partitions",
                    w.column, w.delay_ms
                ),
                None => format!("  watermark{of}: none (no event time)"),
            });
        }
        if plan.sources().len() > 1 || plan.stateful().count() > 1 {
            lines.push(
                "  watermark of an operator: the minimum over its inputs (idle ones left out)"
                    .into(),
            );
        }
        let kind = if is_view {
            QueryKind::MaterializedView
        } else {
            QueryKind::Stream
        };
        let changes = emit_changes(&options, kind)?;
        let last = plan.last_node();
        let emit = match (plan.final_aggregate(), is_view, changes) {
            _ if matches!(last.kind, StatefulKind::TopN(_)) => {
                "emit: FINAL (each window's top rows once, when it closes; late rows dropped)"
            }
            _ if matches!(&last.kind, StatefulKind::Dedup(d) if d.latest) => {
                "emit: the latest row per key into the view (replaced as later rows arrive)"
            }
            _ if matches!(last.kind, StatefulKind::LookupJoin(_)) => {
                "emit: append-only, each row as it is processed, with the view's rows then"
            }
            _ if matches!(last.kind, StatefulKind::TemporalJoin(_)) => {
                "emit: append-only, each left row once the watermark passes it, with the version valid at its time (late rows dropped)"
            }
            _ if matches!(&last.kind, StatefulKind::IntervalJoin(j) if !j.regular && j.lower_ns == 0 && j.upper_ns == 0) => {
                "emit: append-only, each window's pairs once, when the window closes (late rows dropped)"
            }
            _ if matches!(&last.kind, StatefulKind::IntervalJoin(j) if j.regular) => {
                "emit: append-only, each pair once, when its second row arrives (every row held, or for state_ttl past the watermark)"
            }
            _ if matches!(last.kind, StatefulKind::IntervalJoin(_)) => {
                "emit: append-only, each match once, when its second row arrives (late rows dropped)"
            }
            _ if matches!(last.kind, StatefulKind::Dedup(_)) => {
                "emit: append-only, each key's first row once the watermark passes it (later rows of the key and late rows dropped)"
            }
            (None, _, _) => "emit: append-only, each input row processed once",
            (Some(_), false, true) => {
                "emit: CHANGES (each update retracts the old row with _op '-' and adds the new with '+')"
            }
            (Some(a), false, false) if a.window.is_some() => {
                "emit: FINAL (one row per window and group when the window closes; late rows dropped)"
            }
            (Some(_), true, false) => {
                "emit: FINAL into the view (closed windows only; late rows dropped)"
            }
            (Some(a), true, true) if a.window.is_some() => {
                "emit: CHANGES into the view (open windows update, closed windows stay; late rows dropped)"
            }
            (Some(_), _, _) => "emit: CHANGES into the view (rows update as data arrives)",
        };
        lines.push(format!("  {emit}"));
        let readers: usize = plan.sources().iter().map(|s| s.partitions().len()).sum();
        let operators: Vec<String> = plan
            .stateful()
            .map(|(id, node)| match node.instances(parallelism) {
                1 => format!("[{id}] 1 instance"),
                n => format!("[{id}] {n} instances behind a hash exchange on its keys"),
            })
            .collect();
        lines.push(format!(
            "  parallelism: {readers} source reader(s) (stateless steps run there), {}",
            operators.join(", ")
        ));
        Ok(super::show::rows(
            vec![Field::new("plan", DataType::Utf8, false)],
            vec![Arc::new(StringArray::from(lines))],
        ))
    }
}

fn kind_name(kind: QueryKind) -> &'static str {
    match kind {
        QueryKind::Stream => "stream",
        QueryKind::MaterializedView => "materialized view",
    }
}

fn ok(message: String) -> StatementResult {
    StatementResult::Ok {
        message,
        rows_affected: None,
    }
}

/// `parallelism = N`: operator tasks of a stateful query (1 to 64; default 1).
fn parallelism(options: &StreamOptions) -> Result<usize> {
    match options.other.iter().find(|(k, _)| k == "parallelism") {
        None => Ok(1),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "parallelism must be a whole number from 1 to 64, got '{v}'"
                ))
            }),
    }
}

/// `start = 'earliest'` (the default: backfill what is retained) or `'latest'` (only
/// rows committed after the query is created): per input stream, its start offsets
/// (`None` for earliest).
#[allow(clippy::type_complexity)]
fn start_offsets(
    plan: &ContinuousPlan,
    options: &StreamOptions,
) -> Result<Option<Vec<(String, Option<Vec<u64>>)>>> {
    let latest = match options
        .other
        .iter()
        .find(|(k, _)| k == "start")
        .map(|(_, v)| v.to_ascii_lowercase())
    {
        None => return Ok(None),
        Some(v) if v == "earliest" => return Ok(None),
        Some(v) if v == "latest" => true,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "start must be 'earliest' or 'latest', got '{other}'"
            )));
        }
    };
    Ok(Some(
        plan.sources()
            .iter()
            .map(|s| {
                let offsets = latest.then(|| {
                    s.partitions()
                        .iter()
                        .map(|p| p.committed_offset())
                        .collect()
                });
                (s.name().to_string(), offsets)
            })
            .collect(),
    ))
}

/// `EMIT CHANGES` / `EMIT FINAL` (after the query or as `WITH (emit = ...)`), defaulted
/// per SQL.md: views hold current values (changes), streams get final windows.
pub(super) fn emit_changes(options: &StreamOptions, kind: QueryKind) -> Result<bool> {
    match options.other.iter().find(|(k, _)| k == "emit") {
        None => Ok(kind == QueryKind::MaterializedView),
        Some((_, v)) if v.eq_ignore_ascii_case("changes") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("final") => Ok(false),
        Some((_, v)) => Err(Error::Invalid(format!(
            "emit must be 'changes' or 'final' (EMIT CHANGES / EMIT FINAL), got '{v}'"
        ))),
    }
}

/// Refuses plans whose results could not be written continuously into `kind`.
fn check_runnable(plan: &ContinuousPlan, kind: QueryKind, emit_changes: bool) -> Result<()> {
    if plan.windowed()
        && let Some(source) = plan.sources().iter().find(|s| s.def.watermark.is_none())
    {
        return Err(Error::Invalid(format!(
            "continuous windows need event time, but stream {} has no WATERMARK; \
             create it with WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
            source.name()
        )));
    }
    for agg in plan.aggregates() {
        let last = plan.final_aggregate().is_some_and(|a| std::ptr::eq(a, agg));
        if agg.window.is_none() && !last {
            return Err(Error::Invalid(
                "an aggregate without a window never finishes a group, so nothing can be computed \
                 over its results continuously; window the inner aggregate (TUMBLE, HOP or SESSION) \
                 and group by its window_start and window_end"
                    .into(),
            ));
        }
    }
    for (id, node) in plan.stateful() {
        if let StatefulKind::Dedup(d) = &node.kind
            && d.latest
            && (id != plan.last_stateful() || kind != QueryKind::MaterializedView)
        {
            let what = match d.best {
                Some(_) => {
                    "keeping the best row per key by an order other than event time \
                            (ROW_NUMBER() OVER (PARTITION BY k ORDER BY price DESC) = 1)"
                }
                None => {
                    "keeping the latest row per key (ROW_NUMBER() OVER (... ORDER BY ts DESC) = 1)"
                }
            };
            return Err(Error::Invalid(format!(
                "{what} replaces rows as better ones arrive, so it runs as a MATERIALIZED VIEW; \
                 into an append-only stream keep the first row per key (ORDER BY ts), or rank \
                 per window (PARTITION BY window_start, window_end, ...)"
            )));
        }
    }
    let Some(agg) = plan.final_aggregate() else {
        return Ok(());
    };
    if agg.window.is_none() && kind == QueryKind::Stream && !emit_changes {
        return Err(Error::Invalid(
            "an aggregate into an append-only stream needs a window (without one a group never \
             finishes, so it has no final row): add a window (FROM TUMBLE(bids, date_time, INTERVAL '1' MINUTE) ... \
             GROUP BY window_start, window_end, ...), or end the query with EMIT CHANGES to get \
             updates with an _op column ('+' insert, '-' retract), or make it a CREATE MATERIALIZED VIEW"
                .into(),
        ));
    }
    if emit_changes
        && kind == QueryKind::Stream
        && agg.window.as_ref().is_some_and(|w| w.session.is_some())
    {
        return Err(Error::Invalid(
            "EMIT CHANGES over SESSION windows is not available yet (merged sessions would need \
             retractions of both parts); use EMIT FINAL, or a MATERIALIZED VIEW, which shows open sessions"
                .into(),
        ));
    }
    Ok(())
}

/// Output columns become a stream's or view's columns: they need plain, unique names.
fn check_output_columns(plan: &ContinuousPlan) -> Result<()> {
    for field in plan.output_schema.fields() {
        let name = field.name();
        if METADATA_COLUMNS.contains(&name.as_str()) {
            return Err(Error::Invalid(format!(
                "output column {name} is a reserved metadata name; rename it, e.g. {name} AS source{name}"
            )));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Invalid(format!(
                "output column \"{name}\" needs a name: write the expression with AS, e.g. price * 2 AS doubled"
            )));
        }
    }
    Ok(())
}

/// The definition of the stream a `CREATE STREAM ... AS SELECT` writes. It keeps the
/// source's event time when the output keeps the source's time column.
fn derived_stream_def(
    def: &QueryDef,
    plan: &ContinuousPlan,
    options: StreamOptions,
) -> Result<StreamDef> {
    // The stream's columns, without planning metadata (a window's size on window_start).
    let mut schema = datafusion::arrow::datatypes::Schema::new(
        plan.output_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect::<Vec<_>>(),
    );
    if def.emit_changes && plan.final_aggregate().is_some() {
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
            crate::runtime::OP_COLUMN,
            DataType::Utf8,
            false,
        )));
        schema = datafusion::arrow::datatypes::Schema::new(fields);
    }
    for key in &options.key {
        if schema.index_of(key).is_err() {
            return Err(Error::Invalid(format!(
                "key column \"{key}\" is not an output column of the query"
            )));
        }
    }
    let sources = plan.sources();
    let source = &sources[0].def;
    let windowed = plan.last_node().closes_windows();
    let watermark = if windowed {
        // Windows are emitted when they close, in window_end order: window_end is the
        // output's event time, with no delay. Without window_end, window_start carries it
        // (TUMBLE and HOP windows of one size close in the order of their starts).
        ["window_end", "window_start"]
            .into_iter()
            .find(|column| {
                schema
                    .field_with_name(column)
                    .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
            })
            .map(|column| crate::catalog::WatermarkDef {
                column: column.into(),
                delay_ms: 0,
                expression: column.into(),
            })
    } else {
        // A query that keeps its input's time column keeps its watermark (a union: the
        // same column in every input, with the largest delay).
        let same_column = sources.iter().all(|s| {
            s.def.watermark.as_ref().map(|w| &w.column)
                == source.watermark.as_ref().map(|w| &w.column)
        });
        let delay = sources
            .iter()
            .filter_map(|s| s.def.watermark.as_ref().map(|w| w.delay_ms))
            .max();
        let mut watermark = source.watermark.clone().filter(|_| same_column);
        if let (Some(w), Some(delay)) = (&mut watermark, delay)
            && delay != w.delay_ms
        {
            w.delay_ms = delay;
            w.expression = format!("{} - INTERVAL '{delay}' MILLISECOND", w.column);
        }
        watermark.filter(|w| {
            let input = source
                .schema
                .field_with_name(&w.column)
                .ok()
                .map(|f| f.data_type());
            schema
                .field_with_name(&w.column)
                .is_ok_and(|f| Some(f.data_type()) == input)
        })
    };
    let mut stream = ddl::stream_def(
        def.name.clone(),
        def.id,
        schema,
        watermark,
        options,
        source.idle_timeout_ms,
        def.created_at_ms,
    );
    stream.query = Some(def.select.clone());
    Ok(stream)
}

/// A regular join (no time bounds) holds its rows forever unless `state_ttl` bounds
/// them; its output is append-only pairs, which a view or an `EMIT CHANGES` aggregate
/// can take, but an append-only stream of them would grow its state without end.
fn check_regular_joins(plan: &ContinuousPlan, def: &QueryDef) -> Result<()> {
    let regular: Vec<&crate::planner::IntervalJoinPlan> = plan
        .stateful()
        .filter_map(|(_, s)| match &s.kind {
            StatefulKind::IntervalJoin(j) if j.regular => Some(j),
            _ => None,
        })
        .collect();
    if def.state_ttl_ms.is_some() {
        if regular.is_empty() {
            return Err(Error::Invalid(
                "state_ttl bounds the state of joins without time bounds; this query has none \
                 (interval, window and temporal joins drop their rows as the watermark passes)"
                    .into(),
            ));
        }
        if regular.iter().any(|j| !j.timed) {
            return Err(Error::Invalid(
                "state_ttl holds each row for that long past the watermark by its event time, \
                 but a side of this join does not carry its stream's WATERMARK column; use it in \
                 the query (e.g. SELECT ..., a.ts AS auction_time, p.ts AS person_time)"
                    .into(),
            ));
        }
    }
    let append_only = def.kind == QueryKind::Stream && !def.emit_changes;
    if !regular.is_empty() && append_only && def.state_ttl_ms.is_none() {
        return Err(Error::Invalid(
            "a join without time bounds would hold every row of both streams forever; into a \
             stream, bound it by time: an interval join (ON o.id = p.order_id AND p.ts BETWEEN \
             o.ts AND o.ts + INTERVAL '10' MINUTE), a window join (equal window_end), or a \
             temporal join (JOIN rates FOR SYSTEM_TIME AS OF o.ts); a join without bounds can \
             feed a MATERIALIZED VIEW, or a stream WITH (emit = 'changes') or WITH (state_ttl = \
             '1 day')"
                .into(),
        ));
    }
    Ok(())
}

/// Stops a query whose state outgrows its budget (`state_limit`, or `--state-limit`)
/// with a status that says so, before the process runs out of memory. Checked twice a
/// second; ends with the query.
pub(super) async fn watch_state(query: std::sync::Weak<RunningQuery>, budget: u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(query) = query.upgrade() else {
            return;
        };
        if query.has_failed() {
            return;
        }
        let held = query.state_bytes();
        if held > budget {
            query.stop_over_budget(format!(
                "the query holds {} of state, more than its state_limit of {}; bound it \
                 (a window, WITH (state_ttl = ...), fewer groups) or raise WITH (state_limit = \
                 ...) / --state-limit, then create it again",
                crate::limits::format_bytes(held),
                crate::limits::format_bytes(budget)
            ));
            return;
        }
    }
}
