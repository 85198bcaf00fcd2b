//! `CREATE STREAM` / `DROP STREAM`, opening streams at start-up, and the retention loop.
//!
//! Crash safety of DDL: a new stream's directories are created before the catalog names
//! it, and a dropped stream leaves the catalog before its directories are deleted, so a
//! crash in between leaves only an orphan directory, which start-up removes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value};

use super::{Engine, Error, Result, StatementResult, unknown_stream_error};
use crate::catalog::{Catalog, StreamDef, WatermarkDef};
use crate::clock::Clock;
use crate::connector::kafka::{KafkaSourceSpec, OnError, dead_letter_schema};
use crate::external::kafka_source;
use crate::sql::{
    CreateStream, StreamOptions, WatermarkClause, normalize_ident, parse_duration_ms,
};
use crate::stream::{METADATA_COLUMNS, Stream};
use crate::table::StreamRegistry;
use crate::types::sql_type_name;

const DEFAULT_IDLE_TIMEOUT_MS: i64 = 5_000;

impl Engine {
    pub(super) async fn create_stream(&self, create: CreateStream) -> Result<StatementResult> {
        let max_columns = self.config.limits.max_columns;
        if create.columns.len() > max_columns {
            return Err(Error::Limit(format!(
                "stream {} declares {} columns, more than the {max_columns} a stream may have \
                 (--max-columns); keep wide records in a JSON or BYTEA column",
                create.name,
                create.columns.len()
            )));
        }
        if let Some(query) = &create.query {
            if !create.columns.is_empty() {
                return Err(Error::Invalid(
                    "CREATE STREAM ... AS SELECT takes its columns from the query; leave out the column list".into(),
                ));
            }
            return self
                .create_continuous(
                    create.name.clone(),
                    crate::catalog::QueryKind::Stream,
                    create.if_not_exists,
                    &create.options,
                    query,
                )
                .await;
        }
        let name = create.name.clone();
        validate_name(&name)?;
        let mut catalog = self.catalog.lock().await;
        if self.views.read().contains_key(&name) {
            return Err(Error::AlreadyExists(format!(
                "\"{name}\" is a materialized view; choose another name"
            )));
        }
        if catalog.stream(&name).is_some() {
            if create.if_not_exists {
                return Ok(ok(format!("stream {name} already exists")));
            }
            return Err(Error::AlreadyExists(format!(
                "stream \"{name}\" already exists; use CREATE STREAM IF NOT EXISTS, or DROP STREAM {name} first"
            )));
        }
        let mut options = StreamOptions::parse(&create.options).map_err(Error::Invalid)?;
        let declared = if create.columns.is_empty() {
            None
        } else {
            Some(self.build_schema(&create).await?)
        };
        let generator = crate::connector::GeneratorSpec::from_options_with_schema(
            &options.other,
            self.clock.now_ms(),
            declared.clone().map(Arc::new),
        )
        .map_err(Error::Invalid)?;
        let schema = match (declared, &generator) {
            (Some(schema), _) => schema,
            (None, Some(spec)) => spec.schema().as_ref().clone(),
            (None, None) => self.build_schema(&create).await?,
        };
        if let Some(spec) = &generator {
            // Persist the resolved options (base time included): a restart makes the same rows.
            let resolved = spec.resolved_options();
            options
                .other
                .retain(|(k, _)| !resolved.iter().any(|(r, _)| r == k));
            options.other.extend(resolved);
        }
        let source = if crate::connector::kafka::is_source(&options.other) {
            Some(
                self.check_kafka_source(&name, &schema, &mut options)
                    .await?,
            )
        } else {
            None
        };
        for key in &options.key {
            if schema.index_of(key).is_err() {
                return Err(Error::Invalid(format!(
                    "key column \"{key}\" is not a column of {name}; the columns are {}",
                    column_list(&schema)
                )));
            }
        }
        let watermark = match (
            &create.watermark,
            generator.as_ref().and_then(|g| g.watermark()),
        ) {
            (Some(w), _) => Some(watermark_def(w, &schema)?),
            (None, Some((column, delay_ms))) => Some(WatermarkDef {
                expression: if delay_ms % 1000 == 0 {
                    format!("{column} - INTERVAL '{}' SECOND", delay_ms / 1000)
                } else {
                    format!("{column} - INTERVAL '{delay_ms}' MILLISECOND")
                },
                column,
                delay_ms,
            }),
            (None, None) => None,
        };
        let def = stream_def(
            name.clone(),
            catalog.allocate_id(),
            schema,
            watermark,
            options,
            DEFAULT_IDLE_TIMEOUT_MS,
            self.clock.now_ms(),
        );
        if let Some(OnError::DeadLetter(dead)) = source.as_ref().map(|s| &s.errors) {
            self.create_dead_letter_stream(&mut catalog, dead).await?;
        }
        let dir = self.config.data_dir.join("streams").join(def.dir_name());
        let stream = open_stream(&self.config, def.clone(), self.clock.clone()).await?;
        if let Some(spec) = source {
            let s = stream.clone();
            let initialized =
                tokio::task::spawn_blocking(move || kafka_source::initialize(&s, &spec))
                    .await
                    .map_err(|e| Error::Internal(format!("Kafka source check failed: {e}")))?;
            if let Err(e) = initialized {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::Invalid(e));
            }
        }
        if let Err(e) = catalog.put_stream(def) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        self.streams.write().insert(name.clone(), stream.clone());
        self.start_generator(&stream);
        self.start_source(&stream);
        tracing::info!(stream = %name, "created stream");
        Ok(ok(format!("created stream {name}")))
    }

    pub(super) async fn drop_stream(&self, name: &str, if_exists: bool) -> Result<StatementResult> {
        let mut catalog = self.catalog.lock().await;
        let readers: Vec<String> = self
            .readers_of(name)
            .into_iter()
            .filter(|r| r != name)
            .collect();
        if !readers.is_empty() {
            return Err(Error::Invalid(format!(
                "stream {name} is read (or written as late data) by continuous queries ({}); drop them first",
                readers.join(", ")
            )));
        }
        let sources: Vec<String> = catalog
            .streams()
            .filter(|d| crate::connector::kafka::is_source(&d.options))
            .filter(|d| {
                d.options
                    .iter()
                    .any(|(k, v)| k == "errors" && v.eq_ignore_ascii_case(name))
            })
            .map(|d| d.name.clone())
            .collect();
        if !sources.is_empty() {
            return Err(Error::Invalid(format!(
                "stream {name} is the dead-letter stream of Kafka source(s) {}; drop them first",
                sources.join(", ")
            )));
        }
        let sinks = self.sinks_of(&catalog, name);
        if !sinks.is_empty() {
            return Err(Error::Invalid(format!(
                "stream {name} is written out by sink(s) {}; DROP SINK them first",
                sinks.join(", ")
            )));
        }
        if catalog.query(name).is_some() {
            self.drop_query(&mut catalog, name, false).await?;
        }
        let Some(def) = catalog.remove_stream(name)? else {
            if if_exists {
                return Ok(ok(format!("stream {name} does not exist")));
            }
            return Err(unknown_stream_error(name));
        };
        self.stop_generator(name);
        self.stop_source(name);
        self.streams.write().remove(name);
        let dir = self.config.data_dir.join("streams").join(def.dir_name());
        // Scans still running hold open files; unlinking does not disturb them.
        if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await {
            tracing::warn!(stream = name, "could not delete the stream's files: {e}");
        }
        tracing::info!(stream = name, "dropped stream");
        Ok(ok(format!("dropped stream {name}")))
    }

    /// CREATE STREAM of a Kafka source: its options, the cluster and the topic (so a
    /// typo or an unreachable broker is an error now, not later); a stream created
    /// without `partitions` gets one per Kafka partition.
    async fn check_kafka_source(
        &self,
        name: &str,
        schema: &Schema,
        options: &mut StreamOptions,
    ) -> Result<KafkaSourceSpec> {
        let spec = KafkaSourceSpec::from_options(&options.other, schema).map_err(Error::Invalid)?;
        if spec.errors == OnError::DeadLetter(name.to_string()) {
            return Err(Error::Invalid(format!(
                "errors = '{name}' names the source itself; name another stream for the records that do not decode"
            )));
        }
        if !options.key.is_empty() {
            return Err(Error::Invalid(
                "a Kafka source keeps Kafka's partitioning (partition k of the topic goes to partition k of the stream); remove key".into(),
            ));
        }
        let (check, stream) = (spec.clone(), name.to_string());
        let count = tokio::task::spawn_blocking(move || kafka_source::check(&check, &stream))
            .await
            .map_err(|e| Error::Internal(format!("Kafka source check failed: {e}")))?
            .map_err(Error::Invalid)?;
        if options.partitions.is_none() {
            options.partitions = Some(count.clamp(1, 1024) as u32);
        }
        Ok(spec)
    }

    /// The dead-letter stream of a Kafka source: created with [`dead_letter_schema`]
    /// when missing, checked when present.
    async fn create_dead_letter_stream(&self, catalog: &mut Catalog, name: &str) -> Result<()> {
        validate_name(name)?;
        let schema = dead_letter_schema();
        if let Some(existing) = catalog.stream(name) {
            if existing.schema.fields() != schema.fields() {
                return Err(Error::Invalid(format!(
                    "stream {name} exists with other columns than a dead-letter stream's ({}); name another stream in errors = '...'",
                    column_list(&schema)
                )));
            }
            return Ok(());
        }
        if self.views.read().contains_key(name) {
            return Err(Error::AlreadyExists(format!(
                "\"{name}\" is a materialized view; name another stream in errors = '...'"
            )));
        }
        let def = stream_def(
            name.to_string(),
            catalog.allocate_id(),
            schema,
            None,
            StreamOptions::default(),
            DEFAULT_IDLE_TIMEOUT_MS,
            self.clock.now_ms(),
        );
        let dir = self.config.data_dir.join("streams").join(def.dir_name());
        let stream = open_stream(&self.config, def.clone(), self.clock.clone()).await?;
        if let Err(e) = catalog.put_stream(def) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        self.streams.write().insert(name.to_string(), stream);
        tracing::info!(stream = %name, "created dead-letter stream");
        Ok(())
    }

    /// Column definitions to an Arrow schema, with DataFusion's own SQL type mapping
    /// (planning `CREATE TABLE` with the same columns and reading its schema).
    async fn build_schema(&self, create: &CreateStream) -> Result<Schema> {
        if create.columns.is_empty() {
            return Err(Error::Invalid(format!(
                "a stream needs columns, e.g. CREATE STREAM {} (id BIGINT, ts TIMESTAMP)",
                create.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for column in &create.columns {
            let name = normalize_ident(&column.name);
            if METADATA_COLUMNS.contains(&name.as_str()) {
                return Err(Error::Invalid(format!(
                    "column name {name} is reserved for stream metadata ({}); choose another name",
                    METADATA_COLUMNS.join(", ")
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(Error::Invalid(format!(
                    "column \"{name}\" is defined twice"
                )));
            }
        }
        let columns: Vec<String> = create.columns.iter().map(|c| c.to_string()).collect();
        let sql = format!("CREATE TABLE weir_column_check ({})", columns.join(", "));
        let plan = self
            .session
            .state()
            .create_logical_plan(&sql)
            .await
            .map_err(Error::from_datafusion)?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(table)) => {
                Ok(table.input.schema().as_arrow().clone())
            }
            other => Err(Error::Internal(format!(
                "column check planned as {}",
                other.display()
            ))),
        }
    }
}

/// A stream's definition from its `WITH` options (`idle_timeout_ms` when not given).
pub(super) fn stream_def(
    name: String,
    id: u64,
    schema: Schema,
    watermark: Option<WatermarkDef>,
    options: StreamOptions,
    idle_timeout_ms: i64,
    created_at_ms: i64,
) -> StreamDef {
    StreamDef {
        name,
        id,
        schema,
        partitions: options.partitions.unwrap_or(1),
        key: options.key,
        watermark,
        retention_ms: options.retention_ms,
        retention_bytes: options.retention_bytes,
        idle_timeout_ms: options.idle_timeout_ms.unwrap_or(idle_timeout_ms),
        options: options.other,
        query: None,
        created_at_ms,
    }
}

fn ok(message: String) -> StatementResult {
    StatementResult::Ok {
        message,
        rows_affected: None,
    }
}

pub(super) fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid stream name \"{name}\": use letters, digits and underscores, not starting with _"
        )))
    }
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WATERMARK FOR ts AS ts - INTERVAL '4' SECOND` (or `AS ts`): checks and reads the delay.
fn watermark_def(clause: &WatermarkClause, schema: &Schema) -> Result<WatermarkDef> {
    let column = normalize_ident(&clause.column);
    let field = schema.field_with_name(&column).map_err(|_| {
        Error::Invalid(format!(
            "WATERMARK FOR {column}: no such column; the columns are {}",
            column_list(schema)
        ))
    })?;
    if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
        return Err(Error::Invalid(format!(
            "WATERMARK FOR {column}: event time must be a TIMESTAMP column, but {column} is {}",
            sql_type_name(field.data_type())
        )));
    }
    let shape_error = || {
        Error::Invalid(format!(
            "WATERMARK FOR {column} AS {}: expected {column} or {column} - INTERVAL '5' SECOND",
            clause.expr
        ))
    };
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(i) if normalize_ident(i) == column);
    let delay_ms = match &clause.expr {
        e if is_column(e) => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_column(left) => match right.as_ref() {
            Expr::Interval(interval) => {
                let value = match interval.value.as_ref() {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    _ => return Err(shape_error()),
                };
                let text = match &interval.leading_field {
                    Some(unit) => format!("{value} {unit}"),
                    None => value,
                };
                parse_duration_ms(&text)
                    .map_err(|e| Error::Invalid(format!("WATERMARK FOR {column}: {e}")))?
            }
            _ => return Err(shape_error()),
        },
        _ => return Err(shape_error()),
    };
    Ok(WatermarkDef {
        column,
        delay_ms,
        expression: clause.expr.to_string(),
    })
}

/// Opens (recovering) a stream's partitions on a blocking thread and reports what
/// recovery found.
pub(super) async fn open_stream(
    config: &super::EngineConfig,
    def: StreamDef,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Stream>> {
    let dir = config.data_dir.join("streams").join(def.dir_name());
    let segment_bytes = config.segment_bytes;
    let (stream, reports) = tokio::task::spawn_blocking(move || {
        let opened = Stream::open(&dir, def, segment_bytes, clock)?;
        if crate::connector::kafka::is_source(&opened.0.def.options) {
            // Before anyone reads it: rows no saved Kafka position covers go.
            kafka_source::recover(&opened.0).map_err(Error::Invalid)?;
        }
        Ok::<_, Error>(opened)
    })
    .await
    .map_err(|e| Error::Internal(format!("opening stream: {e}")))??;
    for (p, report) in reports.iter().enumerate() {
        if report.bytes_truncated > 0 {
            tracing::warn!(
                stream = stream.name(),
                partition = p,
                "recovery cut {} bytes of torn or corrupt tail",
                report.bytes_truncated
            );
        }
    }
    Ok(Arc::new(stream))
}

/// Deletes stream directories the catalog does not name (left by a crash during DDL).
pub(super) fn remove_orphan_dirs(data_dir: &Path, catalog: &Catalog) {
    let known: std::collections::HashSet<String> =
        catalog.streams().map(|d| d.dir_name()).collect();
    let Ok(entries) = std::fs::read_dir(data_dir.join("streams")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !known.contains(&name) {
            tracing::info!("removing {} (not in the catalog)", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Applies retention to every stream every `interval`.
pub(super) async fn retention_loop(streams: StreamRegistry, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let all: Vec<_> = streams.read().values().cloned().collect();
        let _ = tokio::task::spawn_blocking(move || {
            for stream in all {
                if let Err(e) = stream.enforce_retention() {
                    tracing::warn!(stream = stream.name(), "retention failed: {e}");
                }
            }
        })
        .await;
    }
}
