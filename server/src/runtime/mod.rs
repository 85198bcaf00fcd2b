//! The runtime: runs continuous queries. Each query runs one task per source partition:
//! read the partition from its next offset up to the committed offset, run the plan's
//! steps on each batch, hand the result to the sink, record progress, then wait for the
//! log's next commit (a watch channel, so there is no polling delay).
//!
//! Backpressure: a partition task reads a bounded chunk, and reads the next one only
//! after the sink has taken the previous one, so a slow sink slows its sources and
//! memory stays bounded. Progress (the next unprocessed offset per partition) is what
//! `FLUSH` waits on, and for derived streams it is persisted after each write so a
//! restart resumes where the query left off instead of writing its output twice.

mod progress;
mod sink;

pub use sink::{Sink, ViewState};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::catalog::QueryDef;
use crate::log::{LogBatch, PartitionLog};
use crate::planner::ContinuousPlan;
use crate::stream::metadata_column;

/// Rows read per step of a partition task (bounds memory per query).
const CHUNK_ROWS: u64 = 64 * 1024;

/// A query's live figures.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub batches: AtomicU64,
}

/// A continuous query that is running (or failed).
pub struct RunningQuery {
    pub def: QueryDef,
    pub plan: Arc<ContinuousPlan>,
    pub sink: Sink,
    pub metrics: QueryMetrics,
    /// Next unprocessed offset per source partition.
    progress: Vec<AtomicU64>,
    progressed: watch::Sender<()>,
    error: Mutex<Option<String>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    store: Option<progress::ProgressStore>,
}

impl std::fmt::Debug for RunningQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningQuery")
            .field("name", &self.def.name)
            .finish()
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RunningQuery {
    /// Starts `plan` into `sink`. `progress_dir` (derived streams) persists progress;
    /// without it (views, whose state is rebuilt) the query starts from the earliest
    /// retained offsets.
    pub fn start(
        def: QueryDef,
        plan: ContinuousPlan,
        sink: Sink,
        progress_dir: Option<std::path::PathBuf>,
    ) -> std::io::Result<Arc<RunningQuery>> {
        let partitions = plan.source.partitions().len();
        let store = progress_dir
            .map(|dir| progress::ProgressStore::open(dir, partitions))
            .transpose()?;
        let start: Vec<u64> = match &store {
            Some(store) => store.load()?,
            None => vec![0; partitions],
        };
        let (progressed, _) = watch::channel(());
        let query = Arc::new(RunningQuery {
            def,
            plan: Arc::new(plan),
            sink,
            metrics: QueryMetrics::default(),
            progress: start.iter().map(|&o| AtomicU64::new(o)).collect(),
            progressed,
            error: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            store,
        });
        let handles = (0..partitions)
            .map(|p| {
                let q = query.clone();
                tokio::spawn(async move {
                    if let Err(e) = q.clone().run_partition(p).await {
                        tracing::error!(query = %q.def.name, partition = p, "continuous query failed: {e}");
                        *q.error.lock() = Some(e);
                        q.progressed.send_replace(());
                    }
                })
            })
            .collect();
        *query.tasks.lock() = handles;
        Ok(query)
    }

    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    /// `running` or `failed: <why>`.
    pub fn status(&self) -> String {
        match &*self.error.lock() {
            None => "running".into(),
            Some(e) => format!("failed: {e}"),
        }
    }

    pub fn progress(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .collect()
    }

    /// Waits until every partition has processed everything below `targets` (FLUSH).
    pub async fn wait_for(&self, targets: &[u64]) -> Result<(), String> {
        let mut rx = self.progressed.subscribe();
        loop {
            if let Some(e) = &*self.error.lock() {
                return Err(format!("query {} failed: {e}", self.def.name));
            }
            if self
                .progress()
                .iter()
                .zip(targets)
                .all(|(done, target)| done >= target)
            {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(format!("query {} stopped", self.def.name));
            }
        }
    }

    async fn run_partition(self: Arc<Self>, p: usize) -> Result<(), String> {
        let log: Arc<PartitionLog> = self.plan.source.partitions()[p].clone();
        let mut commits = log.subscribe();
        loop {
            let next = self.progress[p]
                .load(Ordering::Acquire)
                .max(log.earliest_offset());
            let committed = log.committed_offset();
            if next >= committed {
                if commits.changed().await.is_err() {
                    return Ok(()); // the stream was dropped
                }
                continue;
            }
            let to = committed.min(next + CHUNK_ROWS);
            let reader = log.clone();
            let batches: Vec<LogBatch> = tokio::task::spawn_blocking(move || {
                reader.scan(next, to, None).collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let mut outputs = Vec::with_capacity(batches.len());
            for b in &batches {
                let input = with_metadata(p as u32, b, &self.plan.source.table_schema)
                    .map_err(|e| e.to_string())?;
                self.metrics
                    .rows_in
                    .fetch_add(input.num_rows() as u64, Ordering::Relaxed);
                let out = self
                    .plan
                    .apply(&input)
                    .map_err(|e| crate::engine::datafusion_message(&e))?;
                if out.num_rows() > 0 {
                    outputs.push(out);
                }
            }
            let rows: usize = outputs.iter().map(|b| b.num_rows()).sum();
            self.sink.write(outputs).await?;
            self.metrics
                .rows_out
                .fetch_add(rows as u64, Ordering::Relaxed);
            self.metrics
                .batches
                .fetch_add(batches.len() as u64, Ordering::Relaxed);
            if let Some(store) = &self.store {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.save(p, to))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            self.progress[p].store(to, Ordering::Release);
            self.progressed.send_replace(());
        }
    }
}

/// A log batch with its metadata columns appended: the source's table schema.
fn with_metadata(
    partition: u32,
    batch: &LogBatch,
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut columns = batch.batch.columns().to_vec();
    for m in 0..3 {
        columns.push(metadata_column(m, partition, batch));
    }
    RecordBatch::try_new(schema.clone(), columns)
}
