//! Runs every `.slt` file under `sql-tests/` as its own test (so `cargo nextest` lists
//! them), each against a fresh in-process Weir with a new data dir.
//!
//! Weir-specific statements, intercepted here and not sent to Weir:
//! - `RESTART` closes the engine and opens the same data dir again, as a process
//!   restart would;
//! - `ADVANCE CLOCK '5 seconds'` moves the engine's clock (a manual clock, starting at
//!   2025-01-01T00:00:00Z) forward; only idleness and ingest times read it.
//!
//! Against a running server instead: `WEIR_SLT_URL=http://127.0.0.1:7878 cargo test
//! --test sqllogictests` sends each statement to `POST /v1/sql` (results as Arrow IPC,
//! formatted exactly as in-process). `RESTART` is then a no-op; run against an empty
//! server, as files create and drop their own streams.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use libtest_mimic::{Arguments, Failed, Trial};
use sqllogictest::{DBOutput, DefaultColumnType, Runner};
use weir::clock::ManualClock;
use weir::engine::{Engine, EngineConfig, StatementResult};

fn main() {
    // WEIR_LOG=info (or debug) shows the engine's logs while the files run.
    if let Ok(filter) = std::env::var("WEIR_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .init();
    }
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql-tests");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut tests = Vec::new();
    for path in files {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        // The streaming files run a second time with a restart of the engine injected
        // after their middle FLUSH: checkpoints must make that invisible.
        if name.starts_with("slt/streaming/") && std::env::var_os("WEIR_SLT_URL").is_none() {
            let p = path.clone();
            tests.push(Trial::test(
                format!("{name} (restart mid-file)"),
                move || {
                    let text = std::fs::read_to_string(&p)?;
                    let dir = tempfile::tempdir()?;
                    let copy = dir.path().join(p.file_name().unwrap());
                    std::fs::write(&copy, with_restart_mid_file(&text))?;
                    run_file(&copy)
                },
            ));
        }
        tests.push(Trial::test(name, move || run_file(&path)));
    }
    libtest_mimic::run(&args, tests).exit();
}

/// `text` with `statement ok / RESTART` after the FLUSH statement nearest its middle.
fn with_restart_mid_file(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let flushes: Vec<usize> = (1..lines.len())
        .filter(|&i| {
            lines[i].trim().eq_ignore_ascii_case("FLUSH") && lines[i - 1].trim() == "statement ok"
        })
        .collect();
    let Some(&at) = flushes.get(flushes.len() / 2) else {
        return text.to_string();
    };
    let mut out: Vec<&str> = lines[..=at].to_vec();
    out.extend(["", "statement ok", "RESTART"]);
    out.extend(&lines[at + 1..]);
    out.join("\n") + "\n"
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

fn run_file(path: &Path) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let result = match std::env::var("WEIR_SLT_URL") {
            Ok(url) => {
                let mut runner = Runner::new(move || {
                    let url = url.clone();
                    async move {
                        Ok::<_, DbError>(HttpDb {
                            url,
                            client: reqwest::Client::new(),
                        })
                    }
                });
                runner.run_file_async(path).await
            }
            Err(_) => {
                let dir = Arc::new(tempfile::tempdir()?);
                let mut runner = Runner::new(move || {
                    let dir = dir.clone();
                    async move { InProcessDb::open(dir).await }
                });
                runner.run_file_async(path).await
            }
        };
        result.map_err(|e| Failed::from(e.display(false).to_string()))
    })
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

fn is_restart(sql: &str) -> bool {
    sql.trim()
        .trim_end_matches(';')
        .trim()
        .eq_ignore_ascii_case("restart")
}

/// Weir in this process, on a data dir that lives as long as the test file.
struct InProcessDb {
    dir: Arc<tempfile::TempDir>,
    clock: Arc<ManualClock>,
    engine: Option<Arc<Engine>>,
}

const CLOCK_START_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

/// `ADVANCE CLOCK '5 seconds'` → the duration in ms.
fn advance_clock(sql: &str) -> Option<Result<i64, DbError>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let rest = text
        .strip_prefix("ADVANCE CLOCK")?
        .trim()
        .trim_matches('\'');
    Some(weir::sql::parse_duration_ms(rest).map_err(DbError))
}

impl InProcessDb {
    async fn open(dir: Arc<tempfile::TempDir>) -> Result<Self, DbError> {
        let clock = Arc::new(ManualClock::new(CLOCK_START_MS));
        let engine = Self::engine(&dir, &clock).await?;
        Ok(InProcessDb {
            dir,
            clock,
            engine: Some(engine),
        })
    }

    async fn engine(
        dir: &tempfile::TempDir,
        clock: &Arc<ManualClock>,
    ) -> Result<Arc<Engine>, DbError> {
        let mut config = EngineConfig::new(dir.path());
        config.segment_bytes = 4096; // small segments so tests cross segment boundaries
        Engine::open(config, clock.clone())
            .await
            .map_err(|e| DbError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for InProcessDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if is_restart(sql) {
            if let Some(engine) = self.engine.take() {
                engine.shutdown().await;
            }
            self.engine = Some(Self::engine(&self.dir, &self.clock).await?);
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(ms) = advance_clock(sql) {
            self.clock.advance(ms?);
            return Ok(DBOutput::StatementComplete(0));
        }
        let engine = self.engine.as_ref().expect("engine is open");
        let mut results = engine
            .execute_sql(sql)
            .await
            .map_err(|e| DbError(e.error.to_string()))?;
        match results.pop() {
            Some(StatementResult::Rows {
                batches, schema, ..
            }) => {
                let types = schema
                    .fields()
                    .iter()
                    .map(|f| column_type(f.data_type()))
                    .collect();
                Ok(DBOutput::Rows {
                    types,
                    rows: format_rows(&batches)?,
                })
            }
            Some(StatementResult::Ok { rows_affected, .. }) => {
                Ok(DBOutput::StatementComplete(rows_affected.unwrap_or(0)))
            }
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {
        self.engine.take();
    }

    fn engine_name(&self) -> &str {
        "weir"
    }
}

/// A running Weir server, over HTTP.
struct HttpDb {
    url: String,
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for HttpDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if is_restart(sql) {
            return Ok(DBOutput::StatementComplete(0));
        }
        let http = |e: reqwest::Error| DbError(format!("HTTP: {e}"));
        let response = self
            .client
            .post(format!("{}/v1/sql", self.url.trim_end_matches('/')))
            .header("accept", "application/vnd.apache.arrow.stream")
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .map_err(http)?;
        let is_arrow = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/vnd.apache.arrow"));
        let status = response.status();
        let body = response.bytes().await.map_err(http)?;
        if is_arrow {
            let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
                std::io::Cursor::new(body),
                None,
            )
            .map_err(|e| DbError(e.to_string()))?;
            let schema = reader.schema();
            let batches: Vec<RecordBatch> = reader
                .collect::<Result<_, _>>()
                .map_err(|e| DbError(e.to_string()))?;
            let types = schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect();
            return Ok(DBOutput::Rows {
                types,
                rows: format_rows(&batches)?,
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| DbError(e.to_string()))?;
        if !status.is_success() {
            return Err(DbError(
                value["error"]["message"]
                    .as_str()
                    .unwrap_or("error")
                    .to_string(),
            ));
        }
        let last = match value["kind"].as_str() {
            Some("multi") => value["results"]
                .as_array()
                .and_then(|r| r.last())
                .cloned()
                .unwrap_or_default(),
            _ => value,
        };
        Ok(DBOutput::StatementComplete(
            last["rows_affected"].as_u64().unwrap_or(0),
        ))
    }

    async fn shutdown(&mut self) {}
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(_, _)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// Values as DataFusion's own sqllogictests spell them: `NULL`, `(empty)` for an empty
/// string, Arrow's display text for everything else.
/// Values as text the way sqllogictest's Postgres engines print them (booleans `t`/`f`,
/// timestamps `2024-01-01 00:00:01`, floats as Rust prints them), so the same files pass
/// in-process, over HTTP and through `sqllogictest --engine postgres-extended` against
/// Weir's Postgres listener.
fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float32Type, Float64Type};
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, column)| {
                        if column.is_null(row) {
                            return "NULL".to_string();
                        }
                        let text = match column.data_type() {
                            DataType::Boolean => match column.as_boolean().value(row) {
                                true => "t".to_string(),
                                false => "f".to_string(),
                            },
                            DataType::Float64 => {
                                column.as_primitive::<Float64Type>().value(row).to_string()
                            }
                            DataType::Float32 => {
                                column.as_primitive::<Float32Type>().value(row).to_string()
                            }
                            _ => f.value(row).to_string(),
                        };
                        if text.is_empty() {
                            "(empty)".to_string()
                        } else {
                            text
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}
