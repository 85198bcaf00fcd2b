//! Connectors to systems outside Weir at run time: the Kafka source (a topic read into a
//! stream), and the sinks (a stream or view written to Kafka or PostgreSQL). The options
//! and record formats they share with the rest of Weir live in [`crate::connector`].
//!
//! A sink reads only what Weir committed: a stream's rows below each partition's
//! committed offset, or a view's contents as of its last checkpoint. Each sink stores how
//! far it got in the system it writes, in the same transaction as the rows (a PostgreSQL
//! table `weir_sink_progress`, or the offsets of a Kafka transaction), so a restart resumes
//! exactly there.

pub mod kafka_sink;
pub mod kafka_source;
pub mod postgres_sink;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use parking_lot::Mutex;
use serde::Serialize;

use crate::stream::Stream;
use crate::table::ViewState;

/// What a sink reads.
#[derive(Debug, Clone)]
pub enum SinkInput {
    Stream(Arc<Stream>),
    View(Arc<ViewState>),
}

impl SinkInput {
    pub fn schema(&self) -> SchemaRef {
        match self {
            SinkInput::Stream(stream) => stream.schema.clone(),
            SinkInput::View(view) => view.schema.clone(),
        }
    }
}

/// A sink's state for SHOW SINKS and the queries API.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkStatus {
    /// `starting`, `running`, or `retrying` (the other side is unreachable; it retries
    /// with backoff).
    pub state: String,
    pub error: Option<String>,
    /// Rows written (upserts and deletes for a view) since the server started.
    pub rows: u64,
    /// Stream sinks: per partition, the offset up to which rows are written.
    pub positions: Vec<u64>,
    /// Stream sinks: committed rows not written yet.
    pub lag: u64,
    /// View sinks: the checkpoint epoch last applied.
    pub epoch: u64,
}

/// A running sink: a task (PostgreSQL) or a thread (Kafka, whose client blocks), stopped
/// when the handle is dropped.
#[derive(Debug)]
pub struct SinkHandle {
    pub status: Arc<Mutex<SinkStatus>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Runs `attempt` until it returns, retrying with backoff (0.5 s doubling to 10 s) when
/// it fails; the error shows in the status meanwhile.
pub async fn retrying<F, Fut>(name: &str, status: &Mutex<SinkStatus>, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(sink = name, "sink failed, retrying in {backoff:?}: {e}");
                {
                    let mut s = status.lock();
                    s.state = "retrying".into();
                    s.error = Some(e);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Committed rows of `stream` from `positions` on, at most about `max_rows`, as
/// (partition, rows) in offset order; advances `positions`. Blocking.
pub fn read_committed(
    stream: &Stream,
    positions: &mut [u64],
    max_rows: usize,
) -> Result<Vec<(usize, RecordBatch)>, String> {
    let mut out = Vec::new();
    let mut rows = 0;
    for (p, log) in stream.partitions().iter().enumerate() {
        let to = log.committed_offset();
        if positions[p] >= to {
            continue;
        }
        for batch in log.scan(positions[p], to, None) {
            let batch = batch.map_err(|e| format!("cannot read {}: {e}", stream.name()))?;
            let batch = RecordBatch::try_new(stream.schema.clone(), batch.batch.columns().to_vec())
                .map_err(|e| e.to_string())?;
            positions[p] += batch.num_rows() as u64;
            rows += batch.num_rows();
            out.push((p, batch));
            if rows >= max_rows {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Committed rows of `stream` past `positions`.
pub fn lag(stream: &Stream, positions: &[u64]) -> u64 {
    stream
        .partitions()
        .iter()
        .zip(positions)
        .map(|(log, at)| log.committed_offset().saturating_sub(*at))
        .sum()
}

/// Waits until some partition of `stream` commits past `positions` (or 200 ms pass).
pub async fn wait_for_rows(stream: &Stream, positions: &[u64]) {
    let mut waits: Vec<_> = stream.partitions().iter().map(|p| p.subscribe()).collect();
    if lag(stream, positions) > 0 {
        return;
    }
    let changed = futures::future::select_all(waits.iter_mut().map(|w| Box::pin(w.changed())));
    let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
}

/// Rows as JSON objects (column name → value, per design/HTTP.md), for PostgreSQL's
/// `json_populate_recordset` and Kafka message values. BYTEA is written `\x...`.
pub fn json_rows(
    batch: &RecordBatch,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .map(|c| crate::api::values::column_values(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let binary: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| matches!(f.data_type(), DataType::Binary | DataType::LargeBinary))
        .collect();
    Ok((0..batch.num_rows())
        .map(|i| {
            schema
                .fields()
                .iter()
                .zip(&columns)
                .zip(&binary)
                .map(|((f, c), bin)| {
                    let value = match (&c[i], bin) {
                        (serde_json::Value::String(hex), true) => {
                            serde_json::Value::String(format!("\\x{hex}"))
                        }
                        (v, _) => v.clone(),
                    };
                    (f.name().clone(), value)
                })
                .collect()
        })
        .collect())
}
